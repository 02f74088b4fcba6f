"""Every config key of edgelens, with its default and what it means.

Each subsystem owns one Section here; `edgelens config show` prints them all as commented TOML.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Key:
    name: str
    type: type
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    item_type: type | None = None  # for list keys
    pattern: str | None = None     # for str keys: the whole value must match (re.fullmatch)
    secret: bool = False           # shown as REDACTED by `config show`


@dataclass(frozen=True)
class Section:
    name: str
    description: str
    keys: tuple[Key, ...]

    def key(self, name: str) -> Key | None:
        return next((k for k in self.keys if k.name == name), None)


RUNTIME = Section("runtime", "How TFLite models are run.", (
    Key("backend", str, "auto",
        "Interpreter: 'litert' (ai-edge-litert, fast int8), 'tflite' (tflite-runtime 2.14), "
        "or 'auto' (LiteRT when importable, else tflite-runtime).",
        choices=("auto", "litert", "tflite")),
    Key("num_threads", int, 2, "CPU threads per interpreter.", min=1, max=64),
))

MODELS = Section("models", "Where the model store lives and which versions run.", (
    Key("store", str, "",
        "Model store directory (models/<name>/<version>/). Empty: the per-user store "
        "($XDG_DATA_HOME/edgelens/models, ~/.local/share/edgelens/models), seeded with the "
        "versions bundled with the installation; updates and pointer files go there, never "
        "into the installation."),
    Key("recognizer", str, "recognizer",
        "Name of the text-line recognizer model in the store."),
    Key("recognizer_version", str, "",
        "Recognizer version to load; empty: the active version (or newest)."),
))

RECOGNIZER = Section("recognizer", "Reading one text line.", (
    Key("min_confidence", float, 0.5,
        "Lines read with a lower confidence are dropped by `edgelens ocr` and the OCR "
        "benchmark (noise, pictograms and unreadable text); `ocr --all` keeps them.",
        min=0.0, max=1.0),
))

LOGGING = Section("logging", "Logs: JSON lines to a rotating file, readable text to the console.", (
    Key("level", str, "INFO", "Lowest severity logged.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    Key("file", str, "", "JSON-lines log file; empty: console only."),
    Key("max_bytes", int, 10_000_000, "Rotate the log file at this size.", min=10_000),
    Key("backups", int, 3, "Rotated log files kept.", min=0, max=100),
))

PIPELINE = Section("pipeline", "The live pipeline: two paths, two deadlines.", (
    Key("frame_budget_ms", float, 20.0,
        "Frame path budget: tracking + overlay + hand-off of every displayed frame.",
        min=1.0, max=1000.0),
    Key("recognition_budget_ms", float, 200.0,
        "Recognition path budget from capture to a shown result (detect, recognize, "
        "translate); older results are discarded.", min=10.0, max=10_000.0),
    Key("translate_budget_ms", float, 40.0,
        "Share of the recognition budget kept for the translate stage.", min=0.0, max=1000.0),
    Key("max_regions", int, 6, "At most this many text regions are recognized per run "
        "(largest first).", min=1, max=64),
    Key("region_ttl_s", float, 1.5, "A region not seen again by recognition for this long "
        "disappears.", min=0.1, max=60.0),
    Key("match_iou", float, 0.3, "A new result with at least this IoU to a shown region keeps "
        "that region's identity.", min=0.0, max=1.0),
    Key("min_confidence", float, 0.4, "Lines read with less confidence are not shown.",
        min=0.0, max=1.0),
    Key("hud", bool, True, "Show the heads-up display (fps, latency, misses)."),
    Key("tracker_scale", float, 0.5, "Optical flow runs on the frame scaled by this factor.",
        min=0.1, max=1.0),
))

SOURCE = Section("source", "Where frames come from.", (
    Key("uri", str, "synthetic",
        "webcam:N, video:PATH, images:DIR or synthetic[:SEED] (generated signs, moving camera)."),
    Key("fps", float, 30.0, "Frame rate of synthetic and image-folder sources, and the "
        "requested camera rate.", min=1.0, max=240.0),
    Key("realtime", bool, True, "Pace files and generated scenes at their frame rate "
        "(false: as fast as possible).", ),
    Key("max_backoff_s", float, 2.0, "Longest wait between attempts to reopen a failed "
        "source.", min=0.01, max=60.0),
    Key("image_dwell_s", float, 4.0, "images:DIR shows each image this long (letterboxed to "
        "the first image's size), long enough to be read, translated and overlaid; the "
        "overlay starts empty on each new image.", min=0.0, max=600.0),
))

DISPLAY = Section("display", "Where shown frames go.", (
    Key("window", bool, False, "Open a window (the simulator); the service runs headless."),
    Key("record", str, "", "Write the overlaid video to this .mp4 file; empty: don't."),
    Key("snapshot_dir", str, "snapshots", "Folder for snapshots (key 's' in the window)."),
))

SCHEMA: tuple[Section, ...] = (RUNTIME, MODELS, RECOGNIZER, LOGGING, PIPELINE, SOURCE, DISPLAY)

# --- Telemetry, sync and fleet (issue 5) -------------------------------------------------------

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

SCHEMA = SCHEMA + (TELEMETRY, MQTT, SYNC, FLEET)

# --- Text detection (issue 3) ------------------------------------------------------------------

DETECTOR = Section("detector", "Finding text lines in a frame (int8 FCN + OpenCV post-processing).", (
    Key("model", str, "detector", "Name of the text-line detector model in the store."),
    Key("version", str, "", "Detector version to load; empty: the active version (or newest)."),
    Key("input_width", int, 0,
        "Detector resolution width; 0 (with input_height 0): the model's default operating "
        "point. The version must ship this resolution (manifest 'resolutions'; 2.0.0: "
        "640x352, 480x288, 320x192): more pixels find smaller text, fewer are faster.",
        min=0, max=4096),
    Key("input_height", int, 0,
        "Detector resolution height; 0: the model's default (see input_width).",
        min=0, max=4096),
    Key("bin_threshold", float, -1.0,
        "Probability above which a map pixel counts as text kernel; -1: the model's own "
        "(manifest postprocessing.params).", min=-1.0, max=1.0),
    Key("box_threshold", float, -1.0,
        "A region is kept when its mean probability reaches this; -1: the model's own.",
        min=-1.0, max=1.0),
    Key("unclip_ratio", float, -1.0,
        "Each kernel rectangle grows by area * unclip_ratio / perimeter on every side; "
        "-1: the model's own.", min=-1.0, max=5.0),
    Key("min_area", float, -1.0, "Regions smaller than this (frame pixels²) are dropped; "
        "-1: the model's own.", min=-1.0),
    Key("max_regions", int, -1, "Most regions per frame (the highest-scoring are kept); "
        "-1: the model's own.", min=-1, max=1000),
))

SCHEMA = SCHEMA + (DETECTOR,)

TRANSLATOR = Section("translator", "German→English translation of recognized lines: cache, "
                     "phrasebook, then the int8 transformer.", (
    Key("model", str, "translator", "Name of the translator model in the store."),
    Key("version", str, "", "Translator version to load; empty: the active version (or newest)."),
    Key("beam_size", int, 1, "Beam width of the decoder; 1 is greedy (fastest).", min=1, max=8),
    Key("max_tokens", int, 0, "Longest translation in tokens; 0: as long as the model allows "
        "(23).", min=0, max=64),
    Key("cache_size", int, 512, "Recent translations kept in the LRU cache (0: no cache).",
        min=0, max=1_000_000),
    Key("min_ocr_confidence", float, 0.5, "Lines read with a lower recognizer confidence are "
        "not translated; the original text is kept.", min=0.0, max=1.0),
    Key("min_model_confidence", float, 0.2, "Model translations whose mean token probability "
        "is lower are refused (original text kept).", min=0.0, max=1.0),
    Key("max_input_chars", int, 120, "Longer lines are not translated (original text kept).",
        min=1, max=10_000),
    Key("budget_ms", float, 40.0, "Time one translation may take; decoding that would run past "
        "it stops and the original text is kept.", min=1.0, max=10_000.0),
    Key("use_phrasebook", bool, True, "Look exact dictionary entries up before the model."),
    Key("gloss_below_confidence", float, 0.3, "A model translation less confident than this "
        "yields to a word-by-word dictionary gloss (compounds split) when every word is "
        "covered.", min=0.0, max=1.0),
    Key("model_first", bool, True, "Ask the model before the phrasebook (for a model trained "
        "on sign register, like translator 2.x); a model answer less confident than 0.5 "
        "yields to a dictionary entry for the same text. false: the phrasebook first (1.x)."),
    Key("time_style", str, "24h", "How times on signs are written in English: '24h' "
        "(9–18 Uhr → 9:00–18:00) or '12h' (→ 9 am–6 pm). Days become Mon–Fri / Monday to "
        "Friday, floors 1st floor / Ground floor / Basement, prices €2.50.",
        choices=("24h", "12h")),
    Key("show_glosses", bool, True, "Show word-by-word glosses (source 'gloss', confidence "
        "0.3, drawn as uncertain in the overlay); false: keep such a text as read."),
    Key("dictionary", str, "/usr/share/trans/de-en", "The ding German-English dictionary "
        "(Debian package trans-de-en) the phrasebook is built from."),
    Key("phrasebook_cache", str, "", "Directory for the built phrasebook; empty: "
        "$XDG_CACHE_HOME/edgelens or ~/.cache/edgelens."),
))

SCHEMA = SCHEMA + (TRANSLATOR,)

# --- Signed model updates (issue 6) ------------------------------------------------------------

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

SCHEMA = SCHEMA + (UPDATES,)

# --- Power and the operating point (issue 15) ------------------------------------------------

RECOGNITION = Section("recognition", "When the recognition path runs: at full rate while the "
                      "view changes or new text appears, at a low rate once the view is steady "
                      "and every region was read; the overlay follows by tracking meanwhile "
                      "(device/live/rate.py).", (
    Key("on_change", bool, True, "Recognize at full rate only while the view changes; false: "
        "recognize continuously (every frame the recognition worker is free for)."),
    Key("steady_rate_hz", float, 2.0, "Re-check rate while the view is steady and read.",
        min=0.1, max=60.0),
    Key("motion_px", float, 6.0, "The view is moving when the tracker moves the frame's "
        "corners by more than this (pixels, on average) over motion_frames frames.",
        min=0.0, max=1000.0),
    Key("motion_frames", int, 5, "Frames over which motion_px is measured.", min=1, max=300),
    Key("drift_px", float, 16.0, "Recognize at once when the view moved by more than this "
        "(pixels) since the frame of the last complete result: new area came in.",
        min=0.0, max=10_000.0),
    Key("change_level", float, 20.0, "Recognize at once when the last read frame, tracked to "
        "now, and the current frame differ by more than this (0-255) in the mean or spread of "
        "a colour channel in some cell of a 16x9 grid (text appeared where the camera did not "
        "move).", min=0.0, max=255.0),
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

SCHEMA = SCHEMA + (RECOGNITION, CALIBRATION)

# --- Spoken translations (issue 17) -------------------------------------------------------------

AUDIO = Section("audio", "Spoken translations: the on-device voice (espeak-ng), the output "
                "stream, and ducking while the wearer speaks (device/audio/).", (
    Key("speak", str, "off", "'off'; 'new': say each new translation once when it is shown "
        "(not again while the same sign stays in view); 'on-request': say the newest "
        "translation in view when asked.", choices=("off", "new", "on-request")),
    Key("output_device", str, "", "Output device: empty for the default, an index, or part "
        "of a name (`python -m sounddevice` lists them)."),
    Key("input_device", str, "", "Microphone for ducking: empty for the default, an index, "
        "or part of a name."),
    Key("output_latency_ms", float, 50.0, "Audio buffered ahead of the output (less: speech "
        "starts sooner, but a busy CPU makes it stutter; counted in audio_underflows).",
        min=1.0, max=1000.0),
    Key("voice_engine", str, "auto", "'library' (libespeak-ng in-process), 'command' "
        "(espeak-ng --stdout per utterance) or 'auto' (the library when it loads).",
        choices=("auto", "library", "command")),
    Key("voice", str, "en-us", "espeak-ng voice (espeak-ng --voices=en lists them)."),
    Key("words_per_minute", int, 170, "Speaking rate.", min=80, max=450),
    Key("queue_size", int, 2, "Utterances waiting to be said; when full, the oldest is "
        "dropped (counted in audio_dropped_stale).", min=1, max=16),
    Key("repeat_after_s", float, 30.0, "The same text is not said again within this time "
        "(a sign that leaves the view and comes back).", min=0.0, max=86_400.0),
    Key("duck", bool, True, "Listen to the microphone: while the wearer speaks, queued speech "
        "waits and playing speech fades down."),
    Key("duck_gain", float, 0.15, "Level of playing speech while the wearer speaks (1.0: "
        "unchanged).", min=0.0, max=1.0),
    Key("fade_ms", float, 150.0, "Time a fade down or back up takes.", min=1.0, max=5000.0),
    Key("vad_min_dbfs", float, -45.0, "Microphone blocks quieter than this are never speech "
        "(dBFS).", min=-100.0, max=0.0),
    Key("vad_start_ms", float, 60.0, "Voiced audio for this long means the wearer speaks.",
        min=20.0, max=2000.0),
    Key("resume_after_ms", float, 500.0, "Speech resumes after the wearer was quiet this "
        "long.", min=20.0, max=10_000.0),
    Key("max_wait_s", float, 5.0, "Queued speech waiting longer than this for the wearer "
        "is dropped (counted in audio_dropped_waited).", min=0.0, max=600.0),
    Key("soundtrack", str, "", "Also write what is said to this WAV file, each utterance at "
        "the video frame it started on (edgelens demo --speak sets it); empty: don't."),
))

SCHEMA = SCHEMA + (AUDIO,)
