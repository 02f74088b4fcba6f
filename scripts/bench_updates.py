"""Model-update benchmark: python scripts/bench_updates.py [--json] [--devices N] [--size BYTES].
See cloud_sync/update_bench.py."""
from cloud_sync.update_bench import main

raise SystemExit(main())
