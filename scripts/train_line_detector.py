#!/usr/bin/env python
"""Train the 2.x text-line detector: see calibration/training/train_line_detector.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from calibration.training.train_line_detector import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
