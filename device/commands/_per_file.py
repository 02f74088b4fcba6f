"""Shared by commands that work file by file: a bad file is reported and the rest go on."""

from __future__ import annotations

import sys
from typing import Callable

from device.errors import EdgelensError


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
