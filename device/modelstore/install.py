"""Crash-safe changes to the model store: install a staged version, switch ACTIVE, set a failed
version aside, keep the last good versions, and the health verdict file.

Every change is a write to a temporary file, fsync, `os.replace` and an fsync of the directory,
so power loss at any moment leaves either the old or the new state, never a half-written one:

    models/<name>/ACTIVE                 the running version (atomic pointer)
    models/<name>/GOOD                   JSON list of versions that passed their health check
    models/<name>/<version>/HEALTH.json  the verdict on that version (written by the judge)
    models/<name>/.failed/<version>-<t>  versions that failed, kept for inspection

Nothing here imports cloud_sync; the sync agent and the pipeline both use it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from device.errors import ModelStoreError
from device.modelstore.store import ACTIVE, ModelStore, read_manifest, version_key

GOOD = "GOOD"
HEALTH = "HEALTH.json"
FAILED_DIR = ".failed"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: temp file in the same directory, fsync, rename, fsync dir.
    OSError when it cannot be written (a full disk), with no temp file left behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_tree(directory: Path) -> None:
    """fsync every file and directory under `directory` (before renaming it into place)."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            with open(Path(root) / name, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(Path(root))


def set_active(store: ModelStore, name: str, version: str) -> None:
    """Point ACTIVE at an installed version (atomic)."""
    if version not in store.versions(name):
        raise ModelStoreError(f"cannot activate {name} {version}: not in the store")
    write_atomic(store.root / name / ACTIVE, f"{version}\n".encode())


def pin_active(store: ModelStore, name: str) -> str | None:
    """Write ACTIVE for the version that runs now when it is implicit (newest), so that a
    version renamed into the store never becomes active by being the newest."""
    if not store.versions(name):
        return None
    version = store.active_version(name)
    if not (store.root / name / ACTIVE).is_file():
        set_active(store, name, version)
    return version


def install_staged(store: ModelStore, staged: Path, name: str, version: str) -> Path:
    """Move a complete, verified staging directory to models/<name>/<version>/ (atomic rename
    on the same file system). The staging directory's files are fsynced first."""
    target = store.root / name / version
    if target.exists():
        raise ModelStoreError(f"{name} {version} is already installed at {target}")
    read_manifest(staged, name, version)     # a manifest the store cannot read never goes in
    fsync_tree(staged)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staged, target)
    fsync_dir(target.parent)
    fsync_dir(staged.parent)
    return target


def good_versions(store: ModelStore, name: str) -> list[str]:
    try:
        listed = json.loads((store.root / name / GOOD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        listed = []
    present = set(store.versions(name))
    return [v for v in listed if isinstance(v, str) and v in present]


def mark_good(store: ModelStore, name: str, version: str) -> list[str]:
    good = [v for v in good_versions(store, name) if v != version] + [version]
    write_atomic(store.root / name / GOOD, json.dumps(good).encode())
    return good


def previous_good(store: ModelStore, name: str, not_version: str) -> str | None:
    """The newest-marked good version other than `not_version`, or None."""
    for version in reversed(good_versions(store, name)):
        if version != not_version:
            return version
    return None


def set_aside(store: ModelStore, name: str, version: str) -> Path:
    """Move a (failed) version out of the store to models/<name>/.failed/ for inspection."""
    source = store.root / name / version
    if (store.root / name / ACTIVE).is_file() and store.active_version(name) == version:
        raise ModelStoreError(f"{name} {version} is active; switch ACTIVE before setting it "
                              "aside")
    aside = store.root / name / FAILED_DIR / f"{version}-{time.strftime('%Y%m%dT%H%M%S')}"
    aside.parent.mkdir(parents=True, exist_ok=True)
    os.rename(source, aside)
    fsync_dir(source.parent)
    return aside


def prune(store: ModelStore, name: str, keep: int) -> list[str]:
    """Remove installed versions that are neither active nor among the last `keep` good ones
    (call it after a verdict, when no other install is under way). → removed versions."""
    active = store.active_version(name)
    kept = set(good_versions(store, name)[-keep:]) | {active}
    removed = []
    for version in store.versions(name):
        if version in kept:
            continue
        doomed = store.root / name / f".{version}.removing"
        os.rename(store.root / name / version, doomed)   # atomic: gone from the store at once
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(version)
    if removed:
        fsync_dir(store.root / name)
    return removed


def write_health(directory: Path, verdict: dict[str, Any]) -> None:
    write_atomic(Path(directory) / HEALTH, json.dumps(verdict, sort_keys=True).encode())


def read_health(directory: Path) -> dict[str, Any] | None:
    try:
        verdict = json.loads((Path(directory) / HEALTH).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return verdict if isinstance(verdict, dict) else None


def recover(store: ModelStore, name: str) -> None:
    """After a crash: drop half-removed versions and temp files left by an interrupted write."""
    directory = store.root / name
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.name.endswith(".removing"):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(".") and ".tmp-" in entry.name and entry.is_file():
            entry.unlink(missing_ok=True)


def newest(versions: list[str]) -> str | None:
    return max(versions, key=version_key) if versions else None


__all__ = ["write_atomic", "set_active", "pin_active", "install_staged", "good_versions",
           "mark_good", "previous_good", "set_aside", "prune", "write_health", "read_health",
           "recover", "read_manifest", "newest"]
