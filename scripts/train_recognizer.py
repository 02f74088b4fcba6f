"""Train the CTC line recognizer: see calibration/training/train_recognizer.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from calibration.training.train_recognizer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
