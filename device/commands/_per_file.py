"""Shared by commands that work file by file: a bad file is reported and the rest go on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from device.errors import EdgelensError, InputError


def load_image(path: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """The image at `path`, or InputError saying why it cannot be used."""
    if not Path(path).is_file():
        raise InputError(f"cannot read {path}: no such file")
    image = cv2.imread(path, flags)
    if image is None:
        raise InputError(f"cannot read {path} as an image (missing, unreadable or not an image)")
    return image


def run_per_file(paths: list[str], work: Callable[[str], dict],
                 json_out: bool) -> tuple[list[dict], int]:
    """[{"path", **work(path)} or {"path", "error"}], and how many files failed."""
    results, failures = [], 0
    for path in paths:
        try:
            results.append({"path": path, **work(path)})
        except EdgelensError as exc:
            failures += 1
            results.append({"path": path, "error": str(exc)})
            if not json_out:
                print(f"edgelens: {path}: {exc}", file=sys.stderr)
    return results, failures
