"""The model store: `models/<name>/<version>/` with a .tflite artifact and its manifest.

This module reads the store and checks artifacts against their manifests; the golden
self-tests that run a model live in `device.modelstore.golden`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.config import Config
from device.errors import ModelStoreError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CARD = "MODEL_CARD.md"
ACTIVE = "ACTIVE"
REQUIRED_KEYS = ("name", "version", "task", "artifact", "quantization", "signatures",
                 "compatible_backends", "latency_ms", "accuracy", "training",
                 "intended_use", "limitations", "golden")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def default_root() -> Path:
    """The store shipped beside the package (the repository's `models/`): read-only releases."""
    return Path(__file__).resolve().parents[2] / "models"


def user_root() -> Path:
    """The device's own store: $XDG_DATA_HOME/edgelens/models (~/.local/share/...)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edgelens" / "models"


def seed_user_store(root: Path | None = None, bundled: Path | None = None) -> Path:
    """The per-user store, with every bundled version copied in that it lacks (or whose
    manifest differs from the bundled one). Versions installed by updates and the pointer
    files (ACTIVE, GOOD, SHADOW, HEALTH.json) are the device's own and never touched, so the
    update agent and the model watch write there and never into the installation."""
    root, bundled = root or user_root(), bundled or default_root()
    for manifest in sorted(bundled.glob(f"*/*/{MANIFEST}")):
        source = manifest.parent
        target = root / source.parent.name / source.name
        current = target / MANIFEST
        if current.is_file() and current.read_bytes() == manifest.read_bytes():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".seed-{source.name}-", dir=target.parent))
        try:
            shutil.copytree(source, staging / "v")
            if target.exists():
                aside = staging / "old"
                os.replace(target, aside)
            os.replace(staging / "v", target)
        except FileExistsError:
            pass                       # another process seeded it at the same moment
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root


_seeded: dict[Path, Path] = {}
"""user root → the store root this process uses (seeded once per process, not per lookup)."""


def store_root(configured: str = "") -> Path:
    """Where the device's model store is: `[models] store` when set, else the per-user store
    seeded from the bundled one (the bundled store itself when the user's cannot be made).
    The seeding runs once per process: stages, loaders and commands ask for the store often."""
    if configured:
        return Path(configured)
    root = user_root()
    if root in _seeded:
        return _seeded[root]
    try:
        _seeded[root] = seed_user_store(root)
        return _seeded[root]
    except OSError as exc:
        log.warning("per-user model store unavailable; using the bundled one read-only",
                    extra={"path": str(user_root()), "error": str(exc)})
        return default_root()


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path, relative: str | None = None) -> dict[str, Any]:
    """A manifest's entry for one file of a version (`artifact`, `extra_files`): its path
    inside the version's directory (default: its name), sha256 and size."""
    return {"file": relative or path.name, "sha256": sha256_file(path),
            "size_bytes": path.stat().st_size}


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    directory: Path
    manifest: dict[str, Any]

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def artifact(self) -> Path:
        return self.directory / self.manifest["artifact"]["file"]

    def file(self, name: str) -> Path:
        """A file of this version listed in the manifest (artifact, extra_files or
        reference_files)."""
        listed = ([self.manifest["artifact"]] + list(self.manifest.get("extra_files", []))
                  + list(self.manifest.get("reference_files", [])))
        for entry in listed:
            if entry["file"] == name:
                return self._inside(entry["file"])
        raise ModelStoreError(f"{self.name} {self.version}: no file {name!r} in its manifest")

    def _inside(self, relative: str) -> Path:
        path = (self.directory / relative).resolve()
        if self.directory.resolve() not in path.parents:
            raise ModelStoreError(f"{self.name} {self.version}: manifest names a file outside "
                                  f"its directory: {relative!r}")
        return path

    def check_files(self) -> list[str]:
        """Problems with the files against the manifest (empty: all match)."""
        problems = []
        entries = [self.manifest["artifact"]] + list(self.manifest.get("extra_files", []))
        # "reference_files" (fp32 references for benchmarks) are checked where they are
        # present and never required: updates do not carry them to the glasses
        entries += [e for e in self.manifest.get("reference_files", [])
                    if (self.directory / e["file"]).is_file()]
        for entry in entries:
            try:
                path = self._inside(entry["file"])
            except ModelStoreError as exc:
                problems.append(str(exc))
                continue
            if not path.is_file():
                problems.append(f"{entry['file']}: missing")
                continue
            size = path.stat().st_size
            if size != entry.get("size_bytes"):
                problems.append(f"{entry['file']}: {size} bytes, manifest says "
                                f"{entry.get('size_bytes')}")
            digest = sha256_file(path)
            if digest != entry.get("sha256"):
                problems.append(f"{entry['file']}: sha256 {digest[:16]}… does not match the "
                                f"manifest's {str(entry.get('sha256'))[:16]}… (corrupt or "
                                "tampered)")
        if not (self.directory / CARD).is_file():
            problems.append(f"{CARD}: missing")
        return problems


def read_manifest(directory: Path, name: str | None = None,
                  version: str | None = None) -> dict[str, Any]:
    """The manifest of a version directory, checked: the keys every version has, the shape of
    the fields the store and the stages read, and the name and version it must say (default:
    the directory's place in the store, models/<name>/<version>)."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelStoreError(f"{directory}: no {MANIFEST}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelStoreError(f"{path}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ModelStoreError(f"{path}: the manifest must be a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise ModelStoreError(f"{path}: manifest lacks {', '.join(missing)}")
    name, version = name or directory.parent.name, version or directory.name
    if manifest["name"] != name or manifest["version"] != version:
        raise ModelStoreError(f"{path}: manifest says {manifest['name']!r:.80} "
                              f"{manifest['version']!r:.80}, expected {name} {version}")
    problem = _shape_problem(manifest)
    if problem:
        raise ModelStoreError(f"{path}: {problem}")
    return manifest


def _shape_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with the types of the fields the store and the stages read, or None."""
    files = [("artifact", manifest["artifact"])]
    for key in ("extra_files", "reference_files"):
        listed = manifest.get(key, [])
        if not isinstance(listed, list):
            return f"{key} must be a list"
        files += [(key, entry) for entry in listed]
    for key, entry in files:
        if not (isinstance(entry, dict) and isinstance(entry.get("file"), str)
                and isinstance(entry.get("size_bytes"), int)
                and not isinstance(entry.get("size_bytes"), bool)
                and isinstance(entry.get("sha256"), str)):
            return (f"every {key} entry must be an object with a string file, an integer "
                    "size_bytes and a string sha256")
    for key in ("task", "quantization"):
        if not isinstance(manifest[key], str):
            return f"{key} must be a string"
    if not isinstance(manifest["latency_ms"], dict):
        return "latency_ms must be an object"
    backends = manifest["compatible_backends"]
    if not (isinstance(backends, list) and all(isinstance(b, str) for b in backends)):
        return "compatible_backends must be a list of backend names"
    post = manifest.get("postprocessing", {})
    if not isinstance(post, dict):
        return "postprocessing must be an object"
    params = post.get("params", {})
    if not isinstance(params, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in params.values()):
        return "postprocessing params must be numbers"
    return None


class ModelStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_root()

    @classmethod
    def for_config(cls, cfg: Config) -> "ModelStore":
        """The store a device command uses: `[models] store`, or the seeded per-user store."""
        return cls(store_root(cfg.models.store))

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and _NAME.match(p.name) and self.versions(p.name))

    def versions(self, name: str) -> list[str]:
        directory = self.root / name
        if not directory.is_dir():
            return []
        found = [p.name for p in directory.iterdir()
                 if p.is_dir() and _VERSION.match(p.name) and (p / MANIFEST).exists()]
        return sorted(found, key=version_key)

    def active_version(self, name: str) -> str:
        versions = self.versions(name)
        if not versions:
            raise ModelStoreError(f"no model {name!r} in the store at {self.root}; "
                                  f"it has: {', '.join(self.names()) or 'nothing'}")
        pointer = self.root / name / ACTIVE
        if pointer.is_file():
            try:
                chosen = pointer.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ModelStoreError(f"{pointer} is unreadable ({exc}); write a version "
                                      f"into it (have {', '.join(versions)})") from exc
            if chosen in versions:
                return chosen
            raise ModelStoreError(f"{pointer} names version {chosen!r}, which is not in the "
                                  f"store (have {', '.join(versions)})")
        return versions[-1]

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        version = version or self.active_version(name)
        directory = self.root / name / version
        if not directory.is_dir():
            raise ModelStoreError(f"no version {version!r} of {name!r} in {self.root} "
                                  f"(have {', '.join(self.versions(name)) or 'none'})")
        return ModelVersion(name, version, directory, read_manifest(directory))

    def all_versions(self) -> list[ModelVersion]:
        return [self.get(name, version) for name in self.names()
                for version in self.versions(name)]
