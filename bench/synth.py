#!/usr/bin/env python3
"""Synthesise large, realistic captures for the dgcap benchmark (streamed to disk).

    python bench/synth.py OUT.pcap --size 400M [--format pcap|pcapng] [--tls] [--sessions 40]

What is in the capture (captured on the client side, Ethernet/IPv4, 100 ms ticks):

* `--sessions` concurrent Deepgram-like streaming sessions (ws://...:80/v1/listen, or
  wss://...:443 with `--tls`): TCP handshake, HTTP upgrade and a 101 with a correct
  Sec-WebSocket-Accept, then linear16 16 kHz mono audio in 100 ms chunks (3200-byte masked
  binary frames, split at a 1448-byte MSS: 1448 + 1448 + 312), delayed ACKs from the server,
  a Results text frame (interim/final JSON) every second, a KeepAlive text frame every 8 s,
  and at the end CloseStream -> final Results + Metadata and a close 1000 in one segment ->
  the client's close -> FIN/FIN/ACK.  One session in ten stops sending audio instead and is
  closed by the server after 10 s with 1011 (NET-0001).  Sessions last 30-120 s and are
  replaced as they end, so the number of sessions grows with the size
  (`--session-seconds N`: every session lasts N s; the capture's end closes them cleanly).
* Unrelated TCP: HTTP/1.1 file downloads on port 80 (1-16 MB each, ~1 MB/s, client ACK every
  second segment) and SSH-like sessions on port 22 (banners, then length-prefixed binary
  packets: keystrokes, echoes, bursts).
* UDP: DNS queries and answers (port 53), two RTP calls (G.711, 20 ms, both directions);
  none with `--no-udp`.

The pure-stream case of bench/run.py is `--sessions 20 --downloads 0 --ssh 0 --no-udp
--session-seconds 600`: nothing but WebSocket audio sessions.

With `--tls`, each Deepgram session is real TLS 1.3 with TLS_AES_128_GCM_SHA256 made by
OpenSSL through two ssl.SSLObjects over MemoryBIOs (its own handshake, keys and nonces: no
records are replayed), and the client's secrets are written to OUT.keys (NSS key log).
Python's ssl cannot choose TLS 1.3 suites, so the generator re-runs itself with an
OPENSSL_CONF that does.

Ground truth (WebSocket frames per opcode and direction, close codes, sessions, packets)
goes to OUT.truth.json; the benchmark checks both engines against it.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from operator import itemgetter

SYNTH_VERSION = 3

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MSS = 1448
TICK = 100_000  # microseconds
T0 = 1_700_000_000 * 1_000_000
RTT = 20_000  # client <-> Deepgram, microseconds
SEQ_MASK = 0xFFFFFFFF
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Ethernet + IPv4 + TCP (no options) in one pack call; checksums are left 0 (tshark does not check).
_TCP_PACKET = struct.Struct("!6s6sHBBHHHBBH4s4sHHIIBBHHH")
_UDP_PACKET = struct.Struct("!6s6sHBBHHHBBH4s4sHHHH")
_PCAP_RECORD = struct.Struct("<IIII")
_EPB_HEAD = struct.Struct("<IIIIIII")
_U32 = struct.Struct("<I")

CLIENT_MAC = b"\x02\x00\x00\x00\x00\x01"
GATEWAY_MAC = b"\x02\x00\x00\x00\x00\xfe"
DEEPGRAM_IP = bytes((192, 0, 2, 10))
DOWNLOAD_IP = bytes((198, 51, 100, 20))
SSH_IP = bytes((203, 0, 113, 5))
DNS_IP = bytes((10, 0, 0, 53))
RTP_PEER_IP = bytes((198, 51, 100, 77))

OPCODES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


def parse_size(text: str) -> int:
    text = text.strip().upper()
    units = {"K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9}
    if text[-1:] == "B":
        text = text[:-1]
    if text[-1:] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def ws_frame(opcode: int, payload: bytes, mask: bytes | None) -> bytes:
    n = len(payload)
    b0 = 0x80 | opcode
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = bytes((b0, mbit | 126)) + struct.pack("!H", n)
    else:
        head = bytes((b0, mbit | 127)) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little") if n else b""
    return head + mask + masked


def segments(data: bytes, mss: int = MSS) -> list:
    return [data[i:i + mss] for i in range(0, len(data), mss)] or [b""]


# ------------------------------------------------------------------------------ output

class CaptureWriter:
    """pcap (microseconds) or pcapng (one Ethernet interface, microseconds), streamed."""

    def __init__(self, path: str, fmt: str):
        self.f = open(path, "wb", buffering=1 << 20)
        self.fmt = fmt
        self.packets = 0
        self.bytes = 0
        if fmt == "pcap":
            head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
        elif fmt == "pcapng":
            shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
            shb = struct.pack("<II", 0x0A0D0D0A, 12 + len(shb_body)) + shb_body + _U32.pack(12 + len(shb_body))
            idb_body = struct.pack("<HHI", 1, 0, 262144) + struct.pack("<HHB3x", 9, 1, 6) + b"\x00" * 4
            idb = struct.pack("<II", 1, 12 + len(idb_body)) + idb_body + _U32.pack(12 + len(idb_body))
            head = shb + idb
        else:
            raise ValueError(fmt)
        self.f.write(head)
        self.bytes = len(head)

    def write(self, events) -> None:
        parts = []
        append = parts.append
        if self.fmt == "pcap":
            pack = _PCAP_RECORD.pack
            for ts, frame in events:
                n = len(frame)
                append(pack(ts // 1_000_000, ts % 1_000_000, n, n))
                append(frame)
                self.bytes += 16 + n
        else:
            pack = _EPB_HEAD.pack
            u32 = _U32.pack
            pads = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")
            for ts, frame in events:
                n = len(frame)
                pad = pads[n & 3]
                block_len = 32 + n + len(pad)
                append(pack(6, block_len, 0, ts >> 32, ts & 0xFFFFFFFF, n, n))
                append(frame)
                append(pad + u32(block_len))
                self.bytes += block_len
        self.packets += len(events)
        self.f.write(b"".join(parts))

    def close(self) -> None:
        self.f.close()


# ------------------------------------------------------------------------------ flows

class Flow:
    done = False

    def emit(self, tick_start: int, tick_end: int, out: list) -> None:
        raise NotImplementedError

    def close(self, t: int, out: list) -> None:
        """The capture is ending: wind down from time t (>= the current tick's start)."""
        self.done = True


class TcpFlow(Flow):
    """One TCP connection seen from the client's host; direction 0 client->server."""

    def __init__(self, rng, client_ip, client_port, server_ip, server_port, remote_padding=True):
        self.rng = rng
        self.ips = (client_ip, server_ip)
        self.ports = (client_port, server_port)
        self.macs = ((GATEWAY_MAC, CLIENT_MAC), (CLIENT_MAC, GATEWAY_MAC))  # (dst, src) per direction
        self.seq = [rng.getrandbits(32), rng.getrandbits(32)]
        self.ipid = [rng.getrandbits(16), rng.getrandbits(16)]
        self.pad = remote_padding

    def pkt(self, out, ts, d, flags, payload=b"", ack=None):
        seq = self.seq
        if ack is None:
            ack = seq[d ^ 1]
        n = len(payload)
        dst_mac, src_mac = self.macs[d]
        ipid = self.ipid[d] = (self.ipid[d] + 1) & 0xFFFF
        o = d ^ 1
        frame = _TCP_PACKET.pack(dst_mac, src_mac, 0x0800, 0x45, 0, 40 + n, ipid, 0x4000, 64, 6, 0,
                                 self.ips[d], self.ips[o], self.ports[d], self.ports[o],
                                 seq[d], ack if flags & ACK else 0, 0x50, flags, 64240 if d else 65535,
                                 0, 0)
        if n:
            frame += payload
        elif d and self.pad:
            frame += b"\x00\x00\x00\x00\x00\x00"  # a received 54-byte frame, padded to 60 by the NIC
        seq[d] = (seq[d] + n + (1 if flags & (SYN | FIN) else 0)) & SEQ_MASK
        out.append((ts, frame))

    def handshake(self, out, t, rtt):
        self.pkt(out, t, 0, SYN)
        self.pkt(out, t + rtt, 1, SYN | ACK)
        self.pkt(out, t + rtt + 40, 0, ACK)
        return t + rtt + 40

    def data(self, out, t, d, payload, step=25, ack=None):
        """Send payload as MSS segments, `step` microseconds apart; returns the last time."""
        segs = segments(payload)
        last = len(segs) - 1
        for i, s in enumerate(segs):
            self.pkt(out, t, d, ACK | PSH if i == last else ACK, s, ack)
            if i != last:
                t += step
        return t

    def close_fins(self, out, t, first, rtt):
        """`first` sends FIN at t; the other answers with FIN after one RTT-ish; final ACK."""
        other = first ^ 1
        self.pkt(out, t, first, FIN | ACK)
        t2 = t + (rtt if first == 0 else 150)
        self.pkt(out, t2, other, FIN | ACK)
        t3 = t2 + (150 if first == 0 else rtt)
        self.pkt(out, t3, first, ACK)
        return t3


class AudioTemplates:
    """Masked 3200-byte binary frames (100 ms of 16 kHz linear16), precomputed, each pre-split."""

    def __init__(self, rng, count=64):
        samples = []
        phase = 0.0
        for i in range(count * 1600):
            f = 220 + 180 * math.sin(i / 16000 * 0.7)
            phase += 2 * math.pi * f / 16000
            samples.append(int(6000 * math.sin(phase) + rng.randint(-400, 400)))
        pcm = struct.pack(f"<{len(samples)}h", *samples)
        self.frames = []
        for k in range(count):
            chunk = pcm[k * 3200:(k + 1) * 3200]
            frame = ws_frame(2, chunk, rng.randbytes(4))
            self.frames.append(frame)
        self.segments = [segments(f) for f in self.frames]


WORDS = ("hello this is a test of the streaming speech recognition service and the quick brown "
         "fox jumps over the lazy dog while we keep talking about nothing in particular").split()


def results_json(rng, start, duration, is_final, request_id):
    n = rng.randint(3, 12)
    words = [rng.choice(WORDS) for _ in range(n)]
    obj = {"type": "Results", "channel_index": [0, 1], "duration": round(duration, 3),
           "start": round(start, 3), "is_final": is_final, "speech_final": is_final and rng.random() < 0.5,
           "channel": {"alternatives": [{"transcript": " ".join(words),
                                         "confidence": round(0.9 + rng.random() * 0.09, 4),
                                         "words": [{"word": w, "start": round(start + i * 0.3, 2),
                                                    "end": round(start + i * 0.3 + 0.25, 2),
                                                    "confidence": 0.97} for i, w in enumerate(words[:4])]}]},
           "metadata": {"request_id": request_id,
                        "model_info": {"name": "general-nova-3", "version": "2024-11-18", "arch": "nova-3"},
                        "model_uuid": "40bd3654-e622-47c4-a111-63a61b23bfe2"},
           "from_finalize": False}
    return json.dumps(obj, separators=(",", ":")).encode()


def metadata_json(duration, request_id):
    obj = {"type": "Metadata", "transaction_key": "deprecated", "request_id": request_id,
           "sha256": hashlib.sha256(request_id.encode()).hexdigest(), "created": "2023-11-14T22:13:20.000Z",
           "duration": round(duration, 3), "channels": 1,
           "models": ["40bd3654-e622-47c4-a111-63a61b23bfe2"],
           "model_info": {"40bd3654-e622-47c4-a111-63a61b23bfe2": {
               "name": "general-nova-3", "version": "2024-11-18", "arch": "nova-3"}}}
    return json.dumps(obj, separators=(",", ":")).encode()


class Truth:
    def __init__(self):
        self.frames = {"client": {}, "server": {}}
        self.close_codes: dict = {}
        self.sessions = 0
        self.sessions_net0001 = 0

    def frame(self, direction: int, opcode: int, count: int = 1):
        d = self.frames["client" if direction == 0 else "server"]
        name = OPCODES[opcode]
        d[name] = d.get(name, 0) + count

    def close(self, code):
        self.close_codes[str(code)] = self.close_codes.get(str(code), 0) + 1


class DeepgramSession(TcpFlow):
    """ws://api.deepgram.example/v1/listen over plain TCP port 80."""

    port = 80

    def __init__(self, gen, start, duration, client_ip, client_port):
        super().__init__(gen.rng, client_ip, client_port, DEEPGRAM_IP, self.port, remote_padding=True)
        self.gen = gen
        self.truth = gen.truth
        self.start_t = start
        self.end_t = start + duration
        self.net0001 = gen.rng.random() < 0.1
        self.next_t = start
        self.state = "new"
        self.chunks = 0
        self.request_id = "%08x-%04x-4%03x-8%03x-%012x" % (
            gen.rng.getrandbits(32), gen.rng.getrandbits(16), gen.rng.getrandbits(12),
            gen.rng.getrandbits(12), gen.rng.getrandbits(48))
        self.audio = gen.audio
        self.template = gen.rng.randrange(len(self.audio.frames))
        self.truth.sessions += 1

    # -- application bytes -> wire (the TLS subclass encrypts here) ---------
    def send(self, out, t, d, payload, step=25):
        return self.data(out, t, d, payload, step)

    def send_audio(self, out, t):
        k = self.template = (self.template + 1) % len(self.audio.frames)
        segs = self.audio.segments[k]
        self.pkt(out, t, 0, ACK, segs[0])
        self.pkt(out, t + 25, 0, ACK, segs[1])
        acked = self.seq[0]
        self.pkt(out, t + 50, 0, ACK | PSH, segs[2])
        return acked

    def upgrade_request(self):
        key = base64.b64encode(self.rng.randbytes(16)).decode()
        self.ws_key = key
        return ("GET /v1/listen?encoding=linear16&sample_rate=16000&channels=1&model=nova-3"
                "&interim_results=true&smart_format=true HTTP/1.1\r\n"
                "Host: api.deepgram.example\r\n"
                "User-Agent: deepgram-python-sdk/3.7.0\r\n"
                "Authorization: Token dgbench_0123456789abcdef0123456789abcdef\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n").encode()

    def upgrade_response(self):
        accept = base64.b64encode(hashlib.sha1((self.ws_key + WS_GUID).encode()).digest()).decode()
        return ("HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n"
                f"dg-request-id: {self.request_id}\r\n"
                "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n\r\n").encode()

    def client_text(self, out, t, text: bytes):
        self.truth.frame(0, 1)
        return self.send(out, t, 0, ws_frame(1, text, self.rng.randbytes(4)))

    def server_frames(self, out, t, frames):
        """frames: [(opcode, payload)] sent together in one write (one or more segments)."""
        wire = b""
        for opcode, payload in frames:
            self.truth.frame(1, opcode)
            if opcode == 8:
                self.truth.close(struct.unpack("!H", payload[:2])[0])
            wire += ws_frame(opcode, payload, None)
        return self.send(out, t, 1, wire)

    def connect(self, out, t):
        t = self.handshake(out, t, RTT)
        t = self.send(out, t + 60, 0, self.upgrade_request())
        self.pkt(out, t + RTT, 1, ACK)
        t = self.send(out, t + RTT + 1500, 1, self.upgrade_response())
        return t

    # -- the schedule --------------------------------------------------------
    def emit(self, tick_start, tick_end, out):
        while not self.done and self.next_t < tick_end:
            self.step(out)

    def step(self, out):
        t = self.next_t
        if self.state == "new":
            t = self.connect(out, t)
            self.state = "audio"
            self.next_t = t + 3000
            return
        if self.state == "audio":
            if t >= self.end_t:
                self.finish(out, t)
                return
            rng = self.rng
            acked = self.send_audio(out, t)
            self.truth.frame(0, 2)
            self.chunks += 1
            self.pkt(out, t + RTT, 1, ACK, ack=acked)  # delayed ACK: every second segment
            self.pkt(out, t + RTT + 50, 1, ACK)
            if self.chunks % 80 == 0:
                self.client_text(out, t + 30_000, b'{"type":"KeepAlive"}')
                self.pkt(out, t + 30_000 + RTT, 1, ACK)
            if self.chunks % 10 == 0:
                seconds = self.chunks / 10
                final = self.chunks % 30 == 0
                self.server_frames(out, t + 60_000, [(1, results_json(rng, max(0.0, seconds - 3), 1.0 if not final else 3.0,
                                                                         final, self.request_id))])
            self.next_t = t + TICK + rng.randint(-2000, 2000)
            return

    def finish(self, out, t):
        rng = self.rng
        seconds = self.chunks / 10
        if self.net0001:
            # The client stops sending: Deepgram closes 10 s later with 1011.
            self.truth.sessions_net0001 += 1
            t += 10_000_000 + rng.randint(0, 50_000)
            reason = (b"Deepgram did not receive audio data or a text message within the timeout window. "
                      b"See https://dpgr.am/net0001")
            t = self.server_frames(out, t, [(8, struct.pack("!H", 1011) + reason)])
            t = self.close_frame(out, t + 300, 0, 1011)
            self.pkt(out, t + RTT, 1, ACK)
            t = self.fins(out, t + RTT + 200, 1)
        else:
            t = self.client_text(out, t, b'{"type":"CloseStream"}')
            self.pkt(out, t + RTT, 1, ACK)
            t = self.server_frames(out, t + RTT + 80_000,
                                   [(1, results_json(rng, max(0.0, seconds - 1), 1.0, True, self.request_id))])
            t = self.server_frames(out, t + 900, [(1, metadata_json(seconds, self.request_id)),
                                                  (8, struct.pack("!H", 1000))])
            t = self.close_frame(out, t + 200, 0, 1000)
            self.pkt(out, t + RTT, 1, ACK)
            t = self.fins(out, t + RTT + 200, 1)
        self.done = True
        self.gen.session_ended(self, t)

    def close_frame(self, out, t, d, code):
        self.truth.frame(d, 8)
        self.truth.close(code)
        return self.send(out, t, d, ws_frame(8, struct.pack("!H", code), self.rng.randbytes(4) if d == 0 else None))

    def fins(self, out, t, first):
        return self.close_fins(out, t, first, RTT)

    def close(self, t, out):
        if self.done:
            return
        if self.state == "new":
            self.done = True
            self.truth.sessions -= 1
            return
        self.net0001 = False  # a clean end, now
        self.finish(out, max(t, self.next_t))


class TlsDeepgramSession(DeepgramSession):
    """The same session inside real TLS 1.3 (wss:// on port 443)."""

    port = 443

    def __init__(self, gen, start, duration, client_ip, client_port):
        super().__init__(gen, start, duration, client_ip, client_port)
        import ssl
        self._ssl = ssl
        self.c_in, self.c_out, self.s_in, self.s_out = (ssl.MemoryBIO() for _ in range(4))
        self.client = gen.tls_client_context.wrap_bio(self.c_in, self.c_out, server_hostname="api.deepgram.example")
        self.server = gen.tls_server_context.wrap_bio(self.s_in, self.s_out, server_side=True)

    def send(self, out, t, d, payload, step=25):
        side = self.client if d == 0 else self.server
        bio = self.c_out if d == 0 else self.s_out
        side.write(payload)
        return self.data(out, t, d, bio.read(), step)

    def send_audio(self, out, t):
        k = self.template = (self.template + 1) % len(self.audio.frames)
        self.client.write(self.audio.frames[k])
        segs = segments(self.c_out.read())
        ts = t
        acked = None
        for i, s in enumerate(segs):
            self.pkt(out, ts, 0, ACK | PSH if i == len(segs) - 1 else ACK, s)
            if i == 1:
                acked = self.seq[0]
            ts += 25
        return acked if acked is not None else self.seq[0]

    def connect(self, out, t):
        ssl = self._ssl
        t = self.handshake(out, t, RTT)
        client, server = self.client, self.server
        # ClientHello
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = self.c_out.read()
        t = self.data(out, t + 60, 0, hello)
        self.s_in.write(hello)
        try:
            server.do_handshake()
        except ssl.SSLWantReadError:
            pass
        flight = self.s_out.read()
        self.pkt(out, t + RTT, 1, ACK)
        t = self.data(out, t + RTT + 800, 1, flight)
        self.c_in.write(flight)
        client.do_handshake()
        finished = self.c_out.read()
        t = self.data(out, t + 300, 0, finished)
        self.s_in.write(finished)
        try:
            server.do_handshake()
        except ssl.SSLWantReadError:
            pass
        client.write(self.upgrade_request())
        request = self.c_out.read()
        t = self.data(out, t + 40, 0, request)
        self.s_in.write(request)
        # The server reads Finished and the request (it sends its session tickets now).
        while True:
            try:
                if not server.read(65536):
                    break
            except ssl.SSLWantReadError:
                break
        assert self.client.cipher()[0] == "TLS_AES_128_GCM_SHA256", self.client.cipher()
        self.pkt(out, t + RTT, 1, ACK)
        server.write(self.upgrade_response())
        t = self.data(out, t + RTT + 1500, 1, self.s_out.read())
        return t


class HttpDownload(TcpFlow):
    def __init__(self, gen, start, client_ip, client_port, size, rate):
        super().__init__(gen.rng, client_ip, client_port, DOWNLOAD_IP, 80)
        self.gen = gen
        self.next_t = start
        self.size = size
        self.left = size
        self.per_tick = max(2, int(rate * TICK / 1_000_000 / MSS))
        self.blob = gen.blob
        self.state = "new"
        self.unacked = 0

    def emit(self, tick_start, tick_end, out):
        while not self.done and self.next_t < tick_end:
            self.step(out)

    def step(self, out):
        t = self.next_t
        rng = self.rng
        if self.state == "new":
            t = self.handshake(out, t, 8_000)
            name = rng.getrandbits(64)
            req = (f"GET /downloads/pkg-{name:016x}.tar.gz HTTP/1.1\r\nHost: mirror.example.net\r\n"
                   "User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n").encode()
            self.pkt(out, t + 50, 0, ACK | PSH, req)
            self.pkt(out, t + 8_000, 1, ACK)
            head = (f"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/gzip\r\n"
                    f"Content-Length: {self.size}\r\nConnection: keep-alive\r\n\r\n").encode()
            self.head = head
            self.state = "body"
            self.next_t = t + 10_000
            return
        spacing = TICK // self.per_tick
        blob = self.blob
        for i in range(self.per_tick):
            if self.left <= 0:
                break
            if self.head:
                piece = self.head + blob[:MSS - len(self.head)]
                self.left -= MSS - len(self.head)
                self.head = b""
            else:
                n = MSS if self.left >= MSS else self.left
                off = rng.randrange(0, len(blob) - MSS)
                piece = blob[off:off + n]
                self.left -= n
            self.pkt(out, t, 1, ACK | PSH if self.left <= 0 else ACK, piece)
            self.unacked += 1
            if self.unacked == 2 or self.left <= 0:
                self.pkt(out, t + 12, 0, ACK)
                self.unacked = 0
            t += spacing
        if self.left <= 0:
            t = self.close_fins(out, t + 5_000, 0, 8_000)
            self.done = True
            self.gen.download_ended(t)
            return
        self.next_t = t

    def close(self, t, out):
        if self.done:
            return
        self.done = True
        if self.state != "new":
            # Cut short: the client resets the connection.
            self.pkt(out, max(t, self.next_t), 0, RST | ACK)


class SshSession(TcpFlow):
    def __init__(self, gen, start, client_ip, client_port):
        super().__init__(gen.rng, client_ip, client_port, SSH_IP, 22)
        self.gen = gen
        self.next_t = start
        self.state = "new"

    def packet(self, rng, size):
        # packet_length, padding_length, message 94 (channel data), random "encrypted" rest.
        body_len = max(12, size - 4)
        pad = 4 + (-(body_len) % 8 if body_len % 8 else 0)
        return struct.pack("!IBB", body_len, pad, 94) + rng.randbytes(body_len - 2)

    def emit(self, tick_start, tick_end, out):
        while not self.done and self.next_t < tick_end:
            self.step(out)

    def step(self, out):
        t = self.next_t
        rng = self.rng
        if self.state == "new":
            t = self.handshake(out, t, 30_000)
            self.pkt(out, t + 100, 1, ACK | PSH, b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n")
            self.pkt(out, t + 300, 0, ACK | PSH, b"SSH-2.0-OpenSSH_9.6\r\n")
            self.pkt(out, t + 30_300, 1, ACK)
            self.state = "open"
            self.next_t = t + 50_000
            return
        r = rng.random()
        if r < 0.6:  # a keystroke and its echo
            self.pkt(out, t, 0, ACK | PSH, self.packet(rng, 36))
            self.pkt(out, t + 30_000, 1, ACK | PSH, self.packet(rng, rng.choice((36, 52, 100))))
            self.pkt(out, t + 30_100, 0, ACK)
        elif r < 0.66:  # output burst (ls, cat ...)
            burst = rng.randint(4, 40)
            ts = t + 30_000
            for i in range(burst):
                self.pkt(out, ts, 1, ACK | PSH if i == burst - 1 else ACK, self.packet(rng, MSS))
                if i & 1:
                    self.pkt(out, ts + 10, 0, ACK)
                ts += 40
        self.next_t = t + rng.randint(50_000, 300_000)

    def close(self, t, out):
        if self.done:
            return
        self.done = True
        if self.state != "new":
            self.close_fins(out, max(t, self.next_t), 0, 30_000)


class UdpTraffic(Flow):
    """DNS (about 15 lookups/s) and two RTP calls (G.711, 20 ms packets both ways)."""

    def __init__(self, gen):
        self.gen = gen
        self.rng = gen.rng
        self.ipid = 0
        self.rtp = []
        for call in range(2):
            self.rtp.append({"port": 16384 + 2 * call, "peer_port": 30000 + 2 * call,
                             "seq": [self.rng.getrandbits(16), self.rng.getrandbits(16)],
                             "ts": [self.rng.getrandbits(32), self.rng.getrandbits(32)],
                             "ssrc": [self.rng.getrandbits(32), self.rng.getrandbits(32)],
                             "offset": self.rng.randrange(20_000)})
        self.dns_id = 0
        self.dns_port = 40000

    def udp(self, out, ts, src, dst, sport, dport, payload, inbound):
        self.ipid = (self.ipid + 1) & 0xFFFF
        n = len(payload)
        macs = (CLIENT_MAC, GATEWAY_MAC) if inbound else (GATEWAY_MAC, CLIENT_MAC)
        frame = _UDP_PACKET.pack(macs[0], macs[1], 0x0800, 0x45, 0, 28 + n, self.ipid, 0x4000, 64, 17, 0,
                                 src, dst, sport, dport, 8 + n, 0) + payload
        out.append((ts, frame))

    def emit(self, tick_start, tick_end, out):
        rng = self.rng
        me = bytes((10, 0, 0, 1))
        for call in self.rtp:
            for k in range(5):
                ts = tick_start + call["offset"] + k * 20_000
                for d in (0, 1):
                    seq = call["seq"][d] = (call["seq"][d] + 1) & 0xFFFF
                    rts = call["ts"][d] = (call["ts"][d] + 160) & 0xFFFFFFFF
                    payload = struct.pack("!BBHII", 0x80, 0, seq, rts, call["ssrc"][d]) + self.gen.ulaw
                    if d == 0:
                        self.udp(out, ts, me, RTP_PEER_IP, call["port"], call["peer_port"], payload, False)
                    else:
                        self.udp(out, ts + 7_000, RTP_PEER_IP, me, call["peer_port"], call["port"], payload, True)
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            ts = tick_start + rng.randrange(TICK)
            self.dns_id = (self.dns_id + 1) & 0xFFFF
            self.dns_port = 40000 + (self.dns_port + 1 - 40000) % 20000
            name = f"host{rng.randrange(5000)}.example.com"
            qname = b"".join(bytes((len(p),)) + p.encode() for p in name.split(".")) + b"\x00"
            question = qname + struct.pack("!HH", 1, 1)
            query = struct.pack("!HHHHHH", self.dns_id, 0x0100, 1, 0, 0, 0) + question
            answer = (struct.pack("!HHHHHH", self.dns_id, 0x8180, 1, 1, 0, 0) + question
                      + struct.pack("!HHHIH4s", 0xC00C, 1, 1, 300, 4, rng.randbytes(4)))
            self.udp(out, ts, me, DNS_IP, self.dns_port, 53, query, False)
            self.udp(out, ts + 900, DNS_IP, me, 53, self.dns_port, answer, True)


# ------------------------------------------------------------------------------ generator

class Generator:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.truth = Truth()
        self.audio = AudioTemplates(self.rng)
        self.blob = self.rng.randbytes(1 << 16)
        self.ulaw = bytes(self.rng.randrange(256) for _ in range(160))
        self.flows: list = []
        self.client_n = 0
        self.ending = False
        self._pending_sessions: list = []  # start times of replacement sessions
        self._pending_downloads: list = []
        if args.tls:
            self._tls_contexts()

    def _tls_contexts(self):
        import ssl
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
        from tests.support.tls_fixtures import self_signed
        directory = tempfile.mkdtemp(prefix="dgbench-cert-")
        cert, key = self_signed(directory, "bench.test")
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert, key)
        server.minimum_version = ssl.TLSVersion.TLSv1_3
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        client.minimum_version = ssl.TLSVersion.TLSv1_3
        if os.path.exists(self.args.keylog):
            os.unlink(self.args.keylog)
        client.keylog_filename = self.args.keylog
        self.tls_server_context, self.tls_client_context = server, client

    def next_client(self):
        n = self.client_n
        self.client_n += 1
        ip = bytes((10, 1 + (n // 20000) % 250, 1 + (n // 200) % 100, 2 + n % 200 % 250))
        return ip, 32768 + (n * 7919) % 28000

    def new_session(self, start):
        ip, port = self.next_client()
        cls = TlsDeepgramSession if self.args.tls else DeepgramSession
        if self.args.session_seconds:
            duration = self.args.session_seconds * 1_000_000
        else:
            duration = self.rng.randint(30, 120) * 1_000_000
        self.flows.append(cls(self, start, duration, ip, port))

    def session_ended(self, session, t):
        if not self.ending:
            self._pending_sessions.append(t + self.rng.randint(200_000, 3_000_000))

    def new_download(self, start):
        ip, port = self.next_client()
        size = self.rng.randint(1_000_000, 16_000_000)
        self.flows.append(HttpDownload(self, start, ip, port, size, self.args.download_rate))

    def download_ended(self, t):
        if not self.ending:
            self._pending_downloads.append(t + self.rng.randint(100_000, 2_000_000))

    def run(self, path, fmt, target):
        args = self.args
        writer = CaptureWriter(path, fmt)
        rng = self.rng
        for i in range(args.sessions):
            self.new_session(T0 + rng.randrange(5_000_000))
        for i in range(args.downloads):
            self.new_download(T0 + rng.randrange(1_000_000))
        for i in range(args.ssh):
            ip, port = self.next_client()
            self.flows.append(SshSession(self, T0 + rng.randrange(2_000_000), ip, port))
        if args.udp:
            self.flows.append(UdpTraffic(self))
        events: list = []
        key = itemgetter(0)
        t = T0
        while True:
            tick_end = t + TICK
            for flow in self.flows:
                flow.emit(t, tick_end, events)
            if any(f.done for f in self.flows):
                self.flows = [f for f in self.flows if not f.done]
            for start in self._pending_sessions:
                self.new_session(max(start, tick_end))
            for start in self._pending_downloads:
                self.new_download(max(start, tick_end))
            self._pending_sessions.clear()
            self._pending_downloads.clear()
            events.sort(key=key)
            cut = len(events)
            while cut and events[cut - 1][0] >= tick_end:
                cut -= 1
            writer.write(events[:cut])
            del events[:cut]
            t = tick_end
            if writer.bytes >= target:
                break
        # Wind everything down cleanly (sessions close, downloads reset, ssh exits).
        self.ending = True
        for flow in self.flows:
            if isinstance(flow, (DeepgramSession, HttpDownload, SshSession)):
                flow.close(t, events)
        events.sort(key=key)
        writer.write(events)
        writer.close()
        return writer


def synth_params(args) -> dict:
    """The traffic parameters a capture was made with (bench/run.py reuses a kept capture
    only when they are the same)."""
    return {"sessions": args.sessions, "downloads": args.downloads, "ssh": args.ssh,
            "download_rate": args.download_rate, "udp": args.udp, "session_seconds": args.session_seconds}


def generate(args) -> dict:
    started = time.perf_counter()
    gen = Generator(args)
    writer = gen.run(args.out, args.format, parse_size(args.size))
    truth = gen.truth
    info = {"synth_version": SYNTH_VERSION, "path": args.out, "format": args.format, "tls": args.tls,
            "size_arg": args.size, "seed": args.seed, "bytes": os.path.getsize(args.out),
            "packets": writer.packets, "sessions": truth.sessions, "sessions_net0001": truth.sessions_net0001,
            "ws_frames": truth.frames, "close_codes": truth.close_codes,
            "keylog": args.keylog if args.tls else None,
            "params": synth_params(args),
            "generation_seconds": round(time.perf_counter() - started, 2)}
    with open(args.out + ".truth.json", "w") as f:
        json.dump(info, f, indent=2)
    return info


_OPENSSL_CONF = """openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Ciphersuites = TLS_AES_128_GCM_SHA256
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--size", default="100M", help="target file size: 100M, 400M, 4G ...")
    p.add_argument("--format", choices=("pcap", "pcapng"), default="pcap")
    p.add_argument("--tls", action="store_true", help="Deepgram sessions over TLS 1.3 (key log in OUT.keys)")
    p.add_argument("--sessions", type=int, default=40, help="concurrent Deepgram sessions")
    p.add_argument("--downloads", type=int, default=1, help="concurrent HTTP downloads")
    p.add_argument("--download-rate", type=int, default=1_000_000, help="bytes/s per download")
    p.add_argument("--ssh", type=int, default=3, help="concurrent SSH sessions")
    p.add_argument("--no-udp", dest="udp", action="store_false", help="no DNS or RTP packets")
    p.add_argument("--session-seconds", type=int, default=None,
                   help="every Deepgram session lasts this long (default: 30-120 s each)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    args.keylog = args.out + ".keys"
    if args.tls and os.environ.get("DGBENCH_TLS_CHILD") != "1":
        # Re-run with an OpenSSL configuration that makes TLS 1.3 use AES-128-GCM.
        conf = tempfile.NamedTemporaryFile("w", prefix="dgbench-openssl-", suffix=".cnf", delete=False)
        conf.write(_OPENSSL_CONF)
        conf.close()
        env = dict(os.environ, OPENSSL_CONF=conf.name, DGBENCH_TLS_CHILD="1")
        try:
            return subprocess.call([sys.executable, os.path.abspath(__file__)] + list(argv or sys.argv[1:]), env=env)
        finally:
            os.unlink(conf.name)
    info = generate(args)
    print(json.dumps({k: info[k] for k in ("path", "bytes", "packets", "sessions", "generation_seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
