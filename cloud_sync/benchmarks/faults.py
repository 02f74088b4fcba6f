"""`edgelens-sync bench faults [--json] [--quick]`: issue 11 measured, with a Mosquitto on a
free port, real processes and real SQLite files in a temp dir. One row per scenario:

1. kill -9 loop: a producer process (the pipeline's Recorder) and `edgelens-sync run` killed with
   SIGKILL at random moments, then both run to completion; an `edgelens-fleet ingest` process
   stores what arrives. Seq sets per device: written (device store) vs delivered (fleet DB);
   duplicated = one produced record under two seqs; holes = a record missing from the store
   while a later one of the same producer run is there.
2. broker kill -9 with the ingest worker offline (persistent session) after the device synced N
   records (all PUBACKed), restart on the same persistence file: 2 s after the last PUBACK (past
   `autosave_interval 1`) and right after it (the documented window, not held to zero).
3. disk full: the store on a 2 MB tmpfs (root only) filled while the producer writes, then
   freed. The frame-path p95 proxy is the producer's time per `Recorder.log_event` call.
4. fuzz: mutated and random input through every handler in-process, then malformed messages over
   MQTT to an ingest process, `serve` and `push` (threads) and a device's `edgelens-sync run`.
   crashed = exceptions escaping a handler, processes or threads that died.

This module runs the scenarios and prints the table; they live in faults_kill (1, 2),
faults_disk (3) and faults_fuzz (4), with what they share in faults_harness.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cloud_sync.benchmarks.faults_disk import disk_full
from cloud_sync.benchmarks.faults_fuzz import fuzz_handlers, fuzz_mqtt
from cloud_sync.benchmarks.faults_harness import produce
from cloud_sync.benchmarks.faults_kill import broker_crash, kill9
from device import logs
from cloud_sync.fleet.localbroker import LocalBroker


def run(json_out: bool = False, quick: bool = False, seed: int = 11) -> dict[str, Any]:
    rng, rows = random.Random(seed), []
    with tempfile.TemporaryDirectory(prefix="edgelens-faults-") as tmp:
        tmp, n = Path(tmp), 1000 if quick else 3000
        broker = LocalBroker(tmp / "broker").start()
        steps = [("kill -9 loop", lambda: kill9(tmp / "k", broker, 8 if quick else 40, rng)),
                 ("broker kill -9, 2 s after last PUBACK", lambda: broker_crash(tmp / "b2", n, 2)),
                 ("broker kill -9, at last PUBACK (receipts)",
                  lambda: broker_crash(tmp / "b0", n, 0)),
                 ("broker kill -9, at last PUBACK, receipt_timeout_s = 0",
                  lambda: broker_crash(tmp / "b0-off", n, 0, receipts=False)),
                 ("disk full (2 MB tmpfs)", lambda: disk_full(tmp / "d", quick)),
                 ("fuzz, in-process handlers",
                  lambda: fuzz_handlers(tmp / "f", 500 if quick else 10_000)),
                 ("fuzz over MQTT", lambda: fuzz_mqtt(tmp / "m", broker, 200 if quick else 1000))]
        try:
            for name, step in steps:
                began = time.monotonic()
                try:
                    rows.append({"scenario": name, **step()})
                except Exception as exc:  # noqa: BLE001 - a harness failure is a row, not an end
                    rows.append({"scenario": name, "must_be_zero": True, "lost": None,
                                 "crashed": 1, "error": f"{type(exc).__name__}: {exc}"})
                rows[-1]["took_s"] = round(time.monotonic() - began, 1)
        finally:
            broker.kill()
    results = {"machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
               "quick": quick, "rows": rows}
    print(json.dumps(results, indent=2) if json_out else table(results))
    return results


# --- output ---------------------------------------------------------------------------------

def table(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = [f"{m['cpus']} CPUs, load average {m['load_avg_1m']} at the end"
           + (" (--quick)" if results["quick"] else ""),
           f"{'scenario':38} {'lost':>6} {'crashed':>7}  details"]
    for row in results["rows"]:
        lost = "-" if row.get("lost") is None else row["lost"]
        detail = ", ".join(f"{k} {json.dumps(v) if isinstance(v, (dict, list)) else v}"
                           for k, v in row.items() if k not in (
                               "scenario", "must_be_zero", "lost", "crashed", "handlers"))
        out.append(f"{row['scenario']:38} {lost:>6} {row['crashed']:>7}  {detail}")
        out += [f"    {name:53} " + ", ".join(f"{k} {v}" for k, v in c.items())
                for name, c in row.get("handlers", {}).items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """The benchmark; exit status 1 when a count that must be zero is not."""
    import argparse
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["produce"]:
        return produce(argv[1:])
    parser = argparse.ArgumentParser(prog="edgelens-sync bench faults",
                                     description="Records lost and processes crashed under "
                                                 "faults (cloud_sync/benchmarks/faults.py).")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    args = parser.parse_args(argv)
    # the links' reconnect warnings are expected; errors show with their fields
    if not logging.getLogger().handlers:
        logs.setup("ERROR")
    rows = run(args.json, args.quick)["rows"]
    return int(any(r["must_be_zero"] and (r.get("lost") or r["crashed"]) for r in rows))


if __name__ == "__main__":
    raise SystemExit(main())
