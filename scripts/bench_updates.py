"""Model-update benchmark: python scripts/bench_updates.py [--json] [--devices N] [--size BYTES].
See cloud_sync/benchmarks/updates.py."""
from cloud_sync.benchmarks.updates import main

raise SystemExit(main())
