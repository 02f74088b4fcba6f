"""Config sections: the glasses' connectivity and the fleet: the MQTT link, the sync agent, signed
model updates, and the operator's ingestion."""

from device.config_schema.keys import Key, Section

MQTT = Section("mqtt", "The MQTT broker connection (used by edgelens-sync and edgelens-fleet).", (
    Key("host", str, "127.0.0.1", "Broker host name or address."),
    Key("port", int, 1883, "Broker port (8883 is the usual TLS port).", min=1, max=65535),
    Key("client_id", str, "",
        "MQTT client id; empty: derived from the device id (sync) or worker id (fleet)."),
    Key("keepalive_s", int, 30, "MQTT keepalive; the last will fires after 1.5x this "
        "without traffic.", min=5, max=3600),
    Key("tls", bool, False, "Connect with TLS."),
    Key("ca_file", str, "", "CA certificate (PEM) that signed the broker's certificate; "
        "empty: the system CAs."),
    Key("cert_file", str, "", "Client certificate (PEM) for certificate authentication."),
    Key("key_file", str, "", "Private key (PEM) of the client certificate."),
    Key("username", str, "", "User name for password authentication; empty: none."),
    Key("password", str, "", "Password; prefer password_file. `config show` prints it "
        "redacted.", secret=True),
    Key("password_file", str, "", "File whose first line is the password (wins over "
        "password)."),
    Key("reconnect_min_s", float, 1.0, "First reconnect delay; doubles up to "
        "reconnect_max_s.", min=0.1, max=600.0),
    Key("reconnect_max_s", float, 60.0, "Longest reconnect delay.", min=1.0, max=3600.0),
    Key("topic_prefix", str, "edgelens", "First level of every topic (see cloud_sync/README.md); "
        "letters, digits, '_', '-' and '.' only (no '/', '+' or '#').",
        pattern=r"[A-Za-z0-9_.-]{1,64}"),
    Key("protocol", str, "5",
        "MQTT version: '5' (reason codes, session expiry, shared subscriptions) or '3.1.1' for "
        "brokers without MQTT 5 (then a PUBACK cannot say 'no subscribers': run ingest "
        "with a persistent session before devices sync).", choices=("5", "3.1.1")),
))

SYNC = Section("sync", "The store-and-forward sync agent (edgelens-sync).", (
    Key("batch_records", int, 500, "Most records in one published batch.", min=1,
        max=50_000),
    Key("batch_bytes", int, 256 * 1024,
        "Most uncompressed bytes in one published batch (a single larger record goes alone).",
        min=1024, max=64 * 1024 * 1024),
    Key("max_inflight", int, 8, "Batches published and not yet acknowledged (PUBACK).",
        min=1, max=1000),
    Key("ack_timeout_s", float, 30.0,
        "A batch not acknowledged in this time is sent again.", min=0.5, max=3600.0),
    Key("max_bytes_per_s", int, 0,
        "Bandwidth cap on published telemetry (compressed bytes per second); 0: no cap.",
        min=0),
    Key("idle_poll_s", float, 0.2, "How often an idle agent looks for new records.",
        min=0.01, max=60.0),
    Key("status_interval_s", float, 10.0,
        "How often the retained status message (backlog gauge) is published.",
        min=0.5, max=3600.0),
    Key("require_subscriber", bool, True,
        "Treat a PUBACK saying 'no matching subscribers' as not delivered and send again later "
        "(so records are never marked sent while no fleet ingest listens)."),
    Key("retry_delay_s", float, 2.0,
        "Pause after a batch was refused before sending again.", min=0.0, max=600.0),
    Key("receipt_timeout_s", float, 60.0,
        "With a fleet that confirms what it committed (its ingest announces it), a record the "
        "broker acknowledged waits this long for the fleet's receipt and is then sent again, "
        "the wait doubling per try up to receipt_max_wait_s (a broker that crashed after its "
        "PUBACK loses nothing). 0: the PUBACK alone counts as delivered.",
        min=0.0, max=86_400.0),
    Key("receipt_max_wait_s", float, 3600.0,
        "Longest wait for a receipt before sending again (while ingest is down for hours, "
        "each record is re-sent about once this often).", min=1.0, max=7 * 86_400.0),
    Key("max_inbound_bytes", int, 64 * 1024,
        "Inbound (command) messages larger than this are logged and dropped.", min=16),
    Key("compress_level", int, 6, "zlib level for batches (0 = store, 9 = smallest).",
        min=0, max=9),
    Key("nice", int, 10,
        "CPU niceness edgelens-sync gives itself at start, so draining a backlog yields the "
        "CPU to the frame path (0: same priority).", min=0, max=19),
))

UPDATES = Section("updates", "Signed model updates over MQTT: delivery, install, health check "
                  "and rollback (edgelens-sync on the device, edgelens-fleet push/rollout).", (
    Key("enabled", bool, True, "Follow the fleet's desired model versions (edgelens-sync)."),
    Key("group", str, "default", "Rollout group this device belongs to (1-64 of A-Z a-z 0-9 "
        "_ . -)."),
    Key("trusted_keys", list, [], "Ed25519 public keys (PEM files written by edgelens-fleet "
        "keygen) whose signatures this device accepts. Empty: no update is ever installed.",
        item_type=str),
    Key("signing_key", str, "", "Fleet side: the Ed25519 private key (PEM) edgelens-fleet push "
        "signs with."),
    Key("chunk_size", int, 64 * 1024, "Bytes per artifact chunk on the wire (AWS IoT's MQTT "
        "file delivery range).", min=256, max=128 * 1024),
    Key("window_chunks", int, 16, "Chunks a device requests at once.", min=1, max=1024),
    Key("request_timeout_s", float, 3.0, "A requested window not complete in this time is "
        "asked for again (missing chunks only).", min=0.1, max=600.0),
    Key("max_artifact_bytes", int, 256 * 1024 * 1024, "Largest file of a model version a "
        "device accepts.", min=1024),
    Key("staging_dir", str, "", "Where downloads are assembled before the atomic rename into "
        "the store; must be on the store's file system. Empty: <store>/.staging."),
    Key("health_source", str, "pipeline", "Who judges a new version: 'pipeline' (the running "
        "service: golden self-test, latency, error and miss rates over the first frames) or "
        "'agent' (edgelens-sync runs the golden self-test and latency check itself; for "
        "devices without a running pipeline).", choices=("pipeline", "agent")),
    Key("health_timeout_s", float, 120.0, "With health_source 'pipeline': no verdict in this "
        "time and the sync agent runs the golden and latency checks itself.", min=1.0),
    Key("health_frames", int, 100, "Frames after a swap over which error and miss rates are "
        "judged.", min=1, max=1_000_000),
    Key("max_error_rate", float, 0.02, "Most recognition errors per frame allowed in the "
        "health window.", min=0.0, max=1.0),
    Key("max_miss_rate", float, 0.25, "Most recognition deadline misses per recognition run "
        "allowed in the health window.", min=0.0, max=1.0),
    Key("latency_runs", int, 5, "Timed inference runs in the latency check (p50 vs the "
        "manifest's budget_ms).", min=1, max=1000),
    Key("watch_interval_s", float, 1.0, "How often the pipeline looks at the store's ACTIVE "
        "pointers.", min=0.05, max=600.0),
    Key("keep_good", int, 2, "Good versions kept per model (the active one included); older "
        "ones are removed after a healthy update.", min=2, max=100),
    Key("canary_percent", float, 10.0, "Fleet side: share of a group that gets a push first.",
        min=0.0, max=100.0),
    Key("promote_percent", float, 100.0, "Fleet side: promote to the whole group when at least "
        "this share of the canaries is healthy.", min=0.0, max=100.0),
    Key("halt_percent", float, 20.0, "Fleet side: halt the rollout when more than this share "
        "of the devices updated so far failed (rolled back or refused).", min=0.0, max=100.0),
    Key("rollout_file", str, "rollouts.json", "Fleet side: the rollout state (JSON, written "
        "atomically)."),
))

FLEET = Section("fleet", "Fleet-side ingestion (edgelens-fleet).", (
    Key("db", str, "fleet.sqlite", "Fleet database (SQLite file)."),
    Key("share_group", str, "edgelens-ingest",
        "MQTT 5 shared-subscription group; workers in one group split the messages. Letters, "
        "digits, '_', '-' and '.' only.", pattern=r"[A-Za-z0-9_.-]{1,64}"),
    Key("session_expiry_s", int, 86_400,
        "Broker keeps a stopped worker's session (and queues its QoS 1 messages) this long; "
        "at most 4294967295 (MQTT 5's 32-bit limit, which means 'never expires').",
        min=0, max=4_294_967_295),
    Key("max_message_bytes", int, 8 * 1024 * 1024,
        "Telemetry messages larger than this (compressed) are logged and dropped.", min=1024),
    Key("max_batch_bytes", int, 64 * 1024 * 1024,
        "Largest decompressed batch accepted (guards against compression bombs).", min=1024),
    Key("status_window_s", float, 300.0,
        "Window of metric records behind frames/s, p95 latency and miss rate in status.",
        min=1.0, max=30 * 86_400.0),
    Key("groups_file", str, "",
        "Device groups (TOML: [groups] name = [device ids]); edgelens-fleet acl writes the "
        "broker ACL from it so a device reads only its own group's desired state. push, "
        "rollback and serve take membership from it (never from a device) and need it."),
))
