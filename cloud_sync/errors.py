"""Errors of the sync agent and the fleet side (all are EdgelensErrors).

    EdgelensError
    └── SyncError           anything on the sync/fleet path
        ├── LinkError       the broker connection cannot be set up (bad TLS files, bad host)
        ├── PayloadError    a message from the network is malformed, oversized or unexpected
        └── FleetStoreError the fleet database cannot be opened or written
"""

from device.errors import EdgelensError


class SyncError(EdgelensError):
    pass


class LinkError(SyncError):
    pass


class PayloadError(SyncError):
    pass


class FleetStoreError(SyncError):
    pass
