"""A connection whose start is missing is a WebSocket only on real evidence.

Several frames that make sense in sequence, in more than one packet, masking consistent with
the direction.  One packet of noise on a non-WebSocket port (the public corpus once had a
Bitcoin packet on port 8333 read as 4 unmasked continuation frames) is not a session.
"""
from __future__ import annotations

import struct
from pathlib import Path

from tests.support import capture_synth as synth
from tests.support.capture_synth import ACK, PSH
from analyzer.pipeline import analyze_capture
from analyzer.websocket import frame_run_evidence, midstream_evidence_enough

ROOT = Path(__file__).resolve().parents[1]


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes = b"") -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    if len(payload) < 126:
        head += bytes([bit | len(payload)])
    else:
        head += bytes([bit | 126]) + struct.pack("!H", len(payload))
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + payload


def _midstream_capture(tmp_path, client_packets, server_packets=(), port=8333):
    """Packets of a connection with no SYN: client 10.0.0.1:51000 -> server :port."""
    records, seq_c, seq_s, t = [], 1000, 5000, 1_700_000_000
    for i in range(max(len(client_packets), len(server_packets))):
        if i < len(client_packets):
            payload = client_packets[i]
            records.append((t, i * 2, synth.ethernet(synth.ipv4(
                synth.tcp(51000, port, seq_c, seq_s, PSH | ACK, payload)))))
            seq_c += len(payload)
        if i < len(server_packets):
            payload = server_packets[i]
            records.append((t, i * 2 + 1, synth.ethernet(synth.ipv4(
                synth.tcp(port, 51000, seq_s, seq_c, PSH | ACK, payload),
                src=synth.SERVER_IP, dst=synth.CLIENT_IP))))
            seq_s += len(payload)
    path = tmp_path / "mid.pcap"
    path.write_bytes(synth.pcap(records))
    return analyze_capture(str(path))


# --- the evidence itself ------------------------------------------------------------------------

def test_continuations_with_no_message_in_progress_are_not_evidence():
    noise = frame(0, b"ab", fin=False) + frame(0, b"c", fin=False) + frame(0, b"") + \
        frame(0, b"xyz", fin=False)
    # The 4th is a continuation after a final one: the walk stops there.
    assert frame_run_evidence(noise, 0, [0]) == (0, 0, 0)


def test_a_message_the_run_starts_counts_its_continuations():
    data = frame(1, b"he", fin=False) + frame(0, b"ll", fin=False) + frame(0, b"o") + \
        frame(9, b"") + frame(2, b"\x00" * 300)
    starts = [0, len(data) - 304]
    assert frame_run_evidence(data, 0, starts) == (5, 2, 0)


def test_mixed_masking_is_not_one_peers_stream():
    data = frame(2, b"abc", mask=b"\x01\x02\x03\x04") + frame(2, b"abc") + frame(2, b"abc")
    evidence, packets, masked = frame_run_evidence(data, 0, [0, 9, 14])
    assert (evidence, packets, masked) == (3, 3, -1)
    assert not midstream_evidence_enough([(evidence, packets, masked), None])


def test_enough_needs_frames_in_more_than_one_packet_and_opposite_masking():
    assert midstream_evidence_enough([(3, 2, 1), None])
    assert not midstream_evidence_enough([(3, 1, 1), None])  # all in one packet
    assert not midstream_evidence_enough([(2, 2, 1), None])  # too few
    assert midstream_evidence_enough([(2, 1, 1), (1, 1, 0)])  # both ways: 3 frames, 2 packets
    assert not midstream_evidence_enough([(2, 1, 0), (1, 1, 0)])  # both sides unmasked


# --- whole connections --------------------------------------------------------------------------

def test_one_packet_of_noise_on_a_non_websocket_port_is_not_a_session(tmp_path):
    # Bytes that parse as 4 unmasked continuation frames, like the Bitcoin packet did.
    noise = frame(0, b"\x01\x02", fin=False) + frame(0, b"\x03", fin=False) + \
        frame(0, b"\x04\x05\x06", fin=False) + frame(0, b"\x07")
    report = _midstream_capture(tmp_path, [noise])
    assert report.sessions == []


def test_three_frames_in_one_packet_are_not_enough(tmp_path):
    burst = frame(1, b'{"a":1}') + frame(1, b'{"b":2}') + frame(1, b'{"c":3}')
    report = _midstream_capture(tmp_path, [], [burst])
    assert report.sessions == []


def test_frames_across_packets_both_ways_are_a_midstream_session(tmp_path):
    key = b"\x11\x22\x33\x44"
    client = [frame(2, bytes(200), mask=key), frame(2, bytes(200), mask=key)]
    server = [frame(1, b'{"type":"Results"}'), frame(1, b'{"type":"Results"}')]
    report = _midstream_capture(tmp_path, client, server)
    (session,) = report.sessions
    assert session.midstream and session.websocket
    assert (session.frames[0].binary, session.frames[1].text) == (2, 2)
    assert session.client == "10.0.0.1:51000" and session.server == "10.0.0.2:8333"
