"""Every config key of edgelens, with its default and what it means.

Each subsystem owns one Section here; `edgelens config show` prints them all as commented TOML.
"""

from device.config import Key, Section

RUNTIME = Section("runtime", "How TFLite models are run.", (
    Key("backend", str, "auto",
        "Interpreter: 'litert' (ai-edge-litert, fast int8), 'tflite' (tflite-runtime 2.14), "
        "or 'auto' (LiteRT when importable, else tflite-runtime).",
        choices=("auto", "litert", "tflite")),
    Key("num_threads", int, 2, "CPU threads per interpreter.", min=1, max=64),
))

MODELS = Section("models", "Where the model store lives and which versions run.", (
    Key("store", str, "",
        "Model store directory (models/<name>/<version>/). Empty: the store bundled with "
        "the installation."),
    Key("recognizer", str, "recognizer",
        "Name of the text-line recognizer model in the store."),
    Key("recognizer_version", str, "",
        "Recognizer version to load; empty: the active version (or newest)."),
))

RECOGNIZER = Section("recognizer", "Reading one text line.", (
    Key("min_confidence", float, 0.5,
        "Lines read with a lower confidence are reported but marked unreliable.",
        min=0.0, max=1.0),
))

LOGGING = Section("logging", "Logs: JSON lines to a rotating file, readable text to the console.", (
    Key("level", str, "INFO", "Lowest severity logged.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    Key("file", str, "", "JSON-lines log file; empty: console only."),
    Key("max_bytes", int, 10_000_000, "Rotate the log file at this size.", min=10_000),
    Key("backups", int, 3, "Rotated log files kept.", min=0, max=100),
))

SCHEMA: tuple[Section, ...] = (RUNTIME, MODELS, RECOGNIZER, LOGGING)
