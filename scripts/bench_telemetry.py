"""Telemetry benchmark: python scripts/bench_telemetry.py [--json] [--quick]. See cloud_sync/benchmarks/sync.py."""
from cloud_sync.benchmarks.sync import main, run  # noqa: F401  (run(json_out) is the `edgelens bench telemetry` hook)

raise SystemExit(main())
