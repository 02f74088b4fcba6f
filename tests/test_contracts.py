"""Contracts that hold the codebase together: help texts, import direction, the model store."""

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from device.cli import build_parser
from device.modelstore.store import ModelStore, REQUIRED_KEYS, sha256_file

ROOT = Path(__file__).resolve().parent.parent


def _all_parsers(parser, prefix="edgelens"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{prefix} {name}")


def test_every_command_has_help_text():
    parsers = list(_all_parsers(build_parser()))
    assert len(parsers) > 8
    for name, parser in parsers:
        assert parser.description, f"'{name}' has no description"
        for action in parser._actions:
            if action.option_strings and action.help != argparse.SUPPRESS:
                assert action.help, f"'{name}' option {action.option_strings} has no help"


@pytest.mark.parametrize("command", [["--help"], ["models", "--help"], ["bench", "--help"]])
def test_help_runs_from_the_console(command):
    result = subprocess.run([sys.executable, "-m", "device", *command], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    assert "usage: edgelens" in result.stdout


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_imports_point_one_way():
    for path in (ROOT / "device").rglob("*.py"):
        imported = _imports(path)
        assert "cloud_sync" not in imported, f"{path} imports cloud_sync"
        assert "scripts" not in imported, f"{path} imports scripts"
        assert "tensorflow" not in imported, f"{path} imports TensorFlow (training only)"
    for package in ("cloud_sync", "calibration"):
        for path in (ROOT / package).rglob("*.py"):
            assert "scripts" not in _imports(path), f"{path} imports scripts"


def test_only_the_runtime_imports_an_interpreter():
    owners = {p.relative_to(ROOT).as_posix() for p in (ROOT / "device").rglob("*.py")
              if _imports(p) & {"tflite_runtime", "ai_edge_litert"}}
    assert owners == {"device/runtime.py"}


def test_only_the_audio_output_module_imports_sounddevice():
    owners = {p.relative_to(ROOT).as_posix()
              for package in ("device", "cloud_sync", "calibration", "scripts", "tests")
              for p in (ROOT / package).rglob("*.py") if "sounddevice" in _imports(p)}
    assert owners == {"device/audio/output.py"}


def test_every_artifact_is_held_to_its_manifest():
    store = ModelStore(ROOT / "models")
    versions = store.all_versions()
    assert {v.name for v in versions} >= {"recognizer"}
    for version in versions:
        assert set(REQUIRED_KEYS) <= set(version.manifest)
        assert version.check_files() == [], f"{version.name} {version.version}"
        assert version.manifest["golden"], f"{version.name} has no golden self-test"
    for artifact in (ROOT / "models").rglob("*.tflite"):
        manifest = json.loads((artifact.parent / "manifest.json").read_text())
        listed = {e["file"]: e for e in [manifest["artifact"], *manifest.get("extra_files", []),
                                         *manifest.get("reference_files", [])]}
        assert artifact.name in listed, f"{artifact} is not in its manifest"
        assert listed[artifact.name]["sha256"] == sha256_file(artifact)
