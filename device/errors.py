"""The errors edgelens raises. Library errors are translated into these once, at the boundary.

    EdgelensError
    ├── ConfigError       a config file or value is wrong (names the key, expected, given)
    ├── ModelError        a model file is missing, not TFLite, unsupported, or misused
    │   └── ModelStoreError  a manifest is missing/invalid or an artifact fails its checks
    ├── InputError        an image or text given to a stage cannot be used
    ├── SourceError       a frame source failed (camera gone, file truncated)
    ├── AudioError        no usable sound device, or the voice cannot synthesize
    └── TelemetryError    the telemetry store cannot be opened, read or written
        └── StoreCorruptError  the store file is not a usable SQLite database
"""


class EdgelensError(Exception):
    """Base of every error edgelens raises on purpose."""


class ConfigError(EdgelensError):
    pass


class ModelError(EdgelensError):
    pass


class ModelStoreError(ModelError):
    pass


class InputError(EdgelensError):
    pass


class SourceError(EdgelensError):
    pass


class AudioError(EdgelensError):
    pass


class TelemetryError(EdgelensError):
    pass


class StoreCorruptError(TelemetryError):
    pass
