"""A stand-in device process for the end-to-end tests: writes COUNT log events (and one audit
record) through the real Recorder at about RATE records/s, then closes the store.

    python tests/telemetry_producer.py CONFIG COUNT RATE
"""

import sys
import time

from device.config import load
from device.telemetry import Recorder


def main() -> int:
    cfg = load(sys.argv[1])
    count, rate = int(sys.argv[2]), float(sys.argv[3])
    recorder = Recorder.open(cfg.telemetry)
    recorder.audit("producer_started", {"count": count})
    start = time.monotonic()
    for i in range(count):
        recorder.log_event("ERROR" if i % 100 == 0 else "INFO", "frame.done", {"i": i})
        if i % 50 == 0:
            lag = start + i / rate - time.monotonic()
            if lag > 0:
                time.sleep(lag)
    recorder.close()
    print("produced", recorder.stats().written, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
