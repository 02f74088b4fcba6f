"""Config sections: the daemon around the pipeline: its logs, its telemetry store, and the
operating point it was calibrated for."""

from device.config_schema.keys import Key, Section

LOGGING = Section("logging", "Logs: JSON lines to a rotating file, readable text to the console.", (
    Key("level", str, "INFO", "Lowest severity logged.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    Key("file", str, "", "JSON-lines log file of edgelens and edgelens-sync; empty: console "
        "only. edgelens-fleet logs to its console (with times) only."),
    Key("max_bytes", int, 10_000_000, "Rotate the log file at this size.", min=10_000),
    Key("backups", int, 3, "Rotated log files kept.", min=0, max=100),
))

TELEMETRY = Section("telemetry", "The on-device telemetry store: one SQLite file (WAL) fed by a "
                    "bounded queue and one writer thread; bounded on disk.", (
    Key("enabled", bool, True, "Record telemetry at all. Off: the recorder accepts and drops."),
    Key("db_path", str, "telemetry.sqlite",
        "SQLite file of the telemetry store; the sync agent reads the same file."),
    Key("device_id", str, "",
        "This device's id in topics and the fleet database; empty: the host name."),
    Key("max_bytes", int, 256 * 1024 * 1024,
        "Disk limit of the store. When reached, oldest records are evicted by priority: "
        "metrics and data quality, then predictions, then logs and feedback, audit last "
        "(sent records always go before unsent ones). Counts live database pages; the WAL "
        "file beside it stays under 4 MB.", min=1024 * 1024),
    Key("queue_size", int, 20_000,
        "Records held in memory between the frame path and the writer thread; overflow drops "
        "the oldest queued record and is counted.", min=10, max=10_000_000),
    Key("batch_size", int, 1000, "Most records the writer inserts in one transaction.",
        min=1, max=100_000),
    Key("flush_interval_s", float, 0.5,
        "Longest a queued record waits before the writer inserts it.", min=0.01, max=60.0),
    Key("journal", bool, True,
        "Write each record to <db_path>.journal/ (one write call, no fsync) before queueing "
        "it, so a killed process loses nothing: the next start inserts what was not yet "
        "committed, exactly once. Survives the process, not a power cut."),
    Key("keep_sent_s", float, 86_400.0,
        "Records already delivered are kept this long for local inspection, then pruned.",
        min=0.0),
    Key("redact_text", bool, True,
        "Privacy: keep recognized text and its translation out of telemetry; store a salted "
        "hash and the length instead."),
    Key("text_salt", str, "",
        "Salt for redacted text hashes; empty: a random per-store salt kept in the store."),
    Key("log_level", str, "INFO", "Lowest log severity the telemetry log handler records.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    Key("system_metrics", bool, True,
        "Add CPU %, resident memory, disk free and temperature to each per-second metric "
        "record."),
))

CALIBRATION = Section("calibration", "The operating point `edgelens calibrate` measured and "
                      "chose, and where; written by `edgelens calibrate --write`. `edgelens run` "
                      "warns when the device or the model versions differ.", (
    Key("date", str, "", "When it was measured (ISO 8601, UTC); empty: never calibrated."),
    Key("machine", str, "", "Machine architecture it was measured on (platform.machine())."),
    Key("cpu_model", str, "", "CPU model it was measured on (/proc/cpuinfo)."),
    Key("cores", int, 0, "CPU cores it was measured on.", min=0, max=4096),
    Key("backend", str, "", "Interpreter backend it was measured with."),
    Key("models", list, [], "Model versions it was measured with ('detector 2.0.0', ...).",
        item_type=str),
    Key("frame_p95_ms", float, 0.0, "Frame path p95 measured at the chosen point (ms).",
        min=0.0),
    Key("new_translation_p95_ms", float, 0.0, "Capture to a shown new result, p95, measured at "
        "the chosen point (ms).", min=0.0),
    Key("cpu_pct", float, 0.0, "CPU use of the pipeline process at the chosen point, moving "
        "view (% of one core).", min=0.0),
    Key("steady_cpu_pct", float, 0.0, "CPU use at the chosen point, steady view (% of one "
        "core).", min=0.0),
    Key("met_budgets", bool, False, "Whether the chosen point met the frame and "
        "new-translation budgets with margin when it was verified."),
    Key("measurements", list, [], "The profile behind the choice, one line per setting "
        "measured.", item_type=str),
))
