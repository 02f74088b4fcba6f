"""The model store's pointer files and checks that light processes need too.

`models/<name>/SHADOW` names a challenger version (shadow mode, `device.modelstore.shadow`), like
`ACTIVE` names the running one; `checked` holds a version to its manifest before anything loads
it. Only the store and the atomic writer are imported here, so the update agent in the sync
process can set and clear SHADOW pointers without loading any vision code.
"""

from __future__ import annotations

from device.errors import ModelStoreError
from device.modelstore.install import write_atomic
from device.modelstore.store import ModelStore, ModelVersion

SHADOW = "SHADOW"
SHADOWED_STAGES = ("detector", "recognizer", "translator")


def set_shadow(store: ModelStore, name: str, version: str) -> None:
    """Name an installed version as the challenger of `name` (atomic pointer write)."""
    if version not in store.versions(name):
        raise ModelStoreError(f"cannot shadow {name} {version}: not in the store")
    write_atomic(store.root / name / SHADOW, f"{version}\n".encode())


def clear_shadow(store: ModelStore, name: str) -> None:
    """Stop shadowing `name` (a missing pointer is fine)."""
    (store.root / name / SHADOW).unlink(missing_ok=True)


def shadow_version(store: ModelStore, name: str) -> str | None:
    """The challenger version of `name`, or None when there is none (no pointer, or the pointer
    names the active version). A pointer to a version not in the store is an error."""
    pointer = store.root / name / SHADOW
    if not pointer.is_file():
        return None
    chosen = pointer.read_text(encoding="utf-8").strip()
    if chosen not in store.versions(name):
        raise ModelStoreError(f"{pointer} names version {chosen!r}, which is not in the store "
                              f"(have {', '.join(store.versions(name))})")
    return None if chosen == store.active_version(name) else chosen


def checked(version: ModelVersion) -> ModelVersion:
    """The version, once its files match its manifest (sha256, size); else ModelStoreError."""
    problems = version.check_files()
    if problems:
        raise ModelStoreError(f"{version.name} {version.version} in {version.directory} "
                              f"failed its checks: {'; '.join(problems)}")
    return version
