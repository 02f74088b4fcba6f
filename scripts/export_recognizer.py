"""Export trained recognizer weights into the model store: see calibration/package_recognizer.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from calibration.package_recognizer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
