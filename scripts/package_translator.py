#!/usr/bin/env python
"""Evaluate and package the 1.x translator: see calibration/package_translator1.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from calibration.package_translator1 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
