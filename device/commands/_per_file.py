"""Shared by commands that work file by file: a bad file is reported and the rest go on."""

from __future__ import annotations

import sys
from typing import Callable

import cv2
import numpy as np

from device.errors import EdgelensError, InputError, SourceError
from device.live.sources import read_image


def load_image(path: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """The image at `path` (its size checked before decoding), or InputError saying why it
    cannot be used."""
    try:
        image = read_image(path)
    except SourceError as exc:
        raise InputError(f"cannot read {exc}") from None
    if flags == cv2.IMREAD_GRAYSCALE:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
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
