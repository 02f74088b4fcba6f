"""Ed25519 signatures over model manifests (the one module that uses `cryptography` for it).

What gets signed is the *update manifest*: the model version's manifest.json as a JSON object,
plus an `update` block the fleet adds (`files`: every file of the version with its size,
sha256 and per-chunk sha256 list; `chunk_size`; `rollback`). The encoding is canonical JSON:
sorted keys, no whitespace, UTF-8, no NaN, so the device re-encodes what it received and checks
the same bytes. A key is named by `key_id` = the first 16 hex digits of sha256(raw public key).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

from cloud_sync.errors import SyncError


class SignatureError(SyncError):
    """A signature is missing, malformed, by an unknown key, or does not match."""


def canonical(document: Any) -> bytes:
    try:
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise SignatureError(f"manifest cannot be encoded canonically: {exc!r:.200}") from exc


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


def keygen(private_path: Path, public_path: Path) -> str:
    """Write a new signing key (mode 0600, never overwritten) and its public key (0600); → key
    id. Directories it creates are 0700 whatever the umask."""
    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.exists():
        raise SyncError(f"{private_path} exists; refusing to overwrite a signing key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _make_private_dirs(private_path.parent)
    _make_private_dirs(public_path.parent)
    _write_private(private_path, pem, exclusive=True)
    _write_private(public_path, key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        exclusive=False)
    return key_id(key.public_key())


def _make_private_dirs(directory: Path) -> None:
    """mkdir -p with mode 0700 for every directory created here (explicit chmod: mkdir's mode
    is filtered by the umask, and parents=True would create parents 0777 & ~umask)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)


def _write_private(path: Path, data: bytes, exclusive: bool) -> None:
    """Write a key file with mode 0600 (set on the descriptor, so neither the umask nor an
    existing file's mode can widen it); never through a symbolic link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)


def load_private(path: str | Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureError(f"cannot read signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path} is not an Ed25519 private key")
    return key


def load_public(path: str | Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureError(f"cannot read public key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path} is not an Ed25519 public key")
    return key


def sign(document: dict, key: Ed25519PrivateKey) -> dict:
    """→ {"key_id", "signature"} (base64) over canonical(document)."""
    return {"key_id": key_id(key.public_key()),
            "signature": base64.b64encode(key.sign(canonical(document))).decode()}


class TrustedKeys:
    """The public keys a device accepts, by key id."""

    def __init__(self, keys: list[Ed25519PublicKey]):
        self._keys = {key_id(k): k for k in keys}

    @classmethod
    def from_files(cls, paths: list[str]) -> "TrustedKeys":
        return cls([load_public(p) for p in paths])

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, document: dict, signature: dict) -> str:
        """The signer's key id when `signature` is a valid signature of `document` by a
        trusted key; else SignatureError saying why."""
        if not isinstance(signature, dict):
            raise SignatureError("unsigned: no signature block")
        kid, sig = signature.get("key_id"), signature.get("signature")
        if not isinstance(kid, str) or not isinstance(sig, str):
            raise SignatureError("unsigned: signature block lacks key_id or signature")
        key = self._keys.get(kid)
        if key is None:
            raise SignatureError(f"signed by unknown key {kid!r:.40} (trusted: "
                                 f"{', '.join(sorted(self._keys)) or 'none'})")
        try:
            key.verify(base64.b64decode(sig, validate=True), canonical(document))
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(f"bad signature by key {kid}: the manifest was altered or "
                                 "signed with another key") from exc
        return kid
