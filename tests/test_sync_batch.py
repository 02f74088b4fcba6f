"""The batch codec: round trips whole values; any bytes from the network either decode or
raise PayloadError (never anything else)."""

import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync import batch as batch_codec
from cloud_sync.errors import PayloadError
from device.telemetry.records import KINDS, StoredRecord

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12)
bodies = st.dictionaries(st.text(max_size=10), json_values, max_size=5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KINDS), bodies, st.text(max_size=40)), max_size=20))
def test_encode_decode_round_trip(rows):
    records = [StoredRecord(i + 1, kind, 10**18 + i, 10**9 + i, boot, json.dumps(body))
               for i, (kind, body, boot) in enumerate(rows)]
    decoded = batch_codec.decode(batch_codec.encode("dev-1", "boot", (5, 6), records), 1 << 24)
    assert (decoded.device, decoded.boot_id, decoded.sent_wall_ns, decoded.sent_mono_ns) == \
        ("dev-1", "boot", 5, 6)
    assert decoded.records == [(r.seq, r.kind, r.wall_ns, r.mono_ns, r.boot_id,
                                json.loads(r.body)) for r in records]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_payload_error(data):
    for payload in (data, zlib.compress(data)):
        try:
            batch_codec.decode(payload, 1 << 20)
        except PayloadError:
            pass


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_arbitrary_json_documents_decode_or_raise_payload_error(doc):
    try:
        batch_codec.decode(zlib.compress(json.dumps(doc).encode()), 1 << 20)
    except PayloadError:
        pass


def test_a_compression_bomb_is_refused_without_inflating_it():
    bomb = zlib.compress(b"\0" * (20 * 1024 * 1024), 9)
    with pytest.raises(PayloadError, match="inflates beyond"):
        batch_codec.decode(bomb, 1024 * 1024)
