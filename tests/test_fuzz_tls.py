"""TLS decryption of the real captures under corruption: AEAD lets nothing false through.

Each TLS connection of captures/ (TLS 1.2 and 1.3, AES-GCM and ChaCha20, key logs from files
and from a pcapng) is fed record by record.  One byte flipped inside any sealed record of one
direction: that direction's plaintext is exactly what the records before it carried (then
decryption stops with tls-bad-record-mac), and the other direction is untouched.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.tls import KeyLog, TlsConnection

from test_fuzz_harnesses import seeds

STREAMS = seeds.tls_streams()


def split_records(stream: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 5 <= len(stream):
        end = pos + 5 + int.from_bytes(stream[pos + 3:pos + 5], "big")
        out.append(stream[pos:end])
        pos = end
    assert pos == len(stream)
    return out


def feed(keylog_text: str, client: list[bytes], server: list[bytes]):
    """Client hello, every server record, the other client records; returns per direction the
    plaintext each record produced, and the anomaly kinds."""
    keylog = KeyLog()
    keylog.load_text(keylog_text)
    conn = TlsConnection(keylog)
    plain = ([], [])
    kinds = []
    order = [(0, 0)] + [(1, i) for i in range(len(server))] + [(0, i) for i in range(1, len(client))]
    for frame, (direction, i) in enumerate(order, start=1):
        record = (client, server)[direction][i]
        events = conn.feed(direction, record, frame, float(frame))
        plain[direction].append(b"".join(e[2] for e in events if e[0] == "plaintext" and e[1] == direction))
        kinds += [e[1] for e in events if e[0] == "anomaly"]
    events = conn.finish()
    kinds += [e[1] for e in events if e[0] == "anomaly"]
    return plain, kinds


GENUINE = []
for _keylog, _client, _server in STREAMS:
    _records = (split_records(_client), split_records(_server))
    _plain, _kinds = feed(_keylog, *_records)
    GENUINE.append((_records, _plain))


def test_every_sample_decrypts_completely():
    for (records, plain), (_, client, server) in zip(GENUINE, STREAMS):
        assert b"".join(plain[0]).startswith(b"GET /v1/listen?")
        assert b"".join(plain[1]).startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert sum(map(len, records[0])) == len(client) and sum(map(len, records[1])) == len(server)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(STREAMS) - 1), st.integers(0, 1), st.data())
def test_a_flipped_byte_in_a_sealed_record_stops_exactly_there(index, direction, data):
    keylog_text = STREAMS[index][0]
    records, plain = GENUINE[index]
    # Sealed records: application data (TLS 1.3 seals its handshake in those too).
    sealed = [i for i, r in enumerate(records[direction]) if r[0] == 23 and i > 0]
    r = data.draw(st.sampled_from(sealed))
    record = bytearray(records[direction][r])
    at = data.draw(st.integers(5, len(record) - 1))
    record[at] ^= data.draw(st.integers(1, 255))
    damaged = list(records[direction])
    damaged[r] = bytes(record)
    both = [records[0], records[1]]
    both[direction] = damaged
    got, kinds = feed(keylog_text, *both)
    assert b"".join(got[direction]) == b"".join(plain[direction][:r])
    assert "tls-bad-record-mac" in kinds and "tls-internal-error" not in kinds
    assert b"".join(got[1 - direction]) == b"".join(plain[1 - direction])
