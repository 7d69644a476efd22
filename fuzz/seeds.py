"""Seed inputs for the fuzzers (and the property tests), extracted from captures/.

Every seed comes from a real recording: whole capture files, each connection's two
reassembled TCP byte streams, the HTTP upgrade heads, the WebSocket frame streams after
the 101, the TLS record streams (with their key logs) and the Deepgram JSON messages.

    python fuzz/seeds.py OUT_DIR      # writes OUT_DIR/<harness>/<seed files>

Importable without atheris: tests load it with importlib (it is not a package).
"""
from __future__ import annotations

import hashlib
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analyzer.capture import PacketDecoder, open_capture  # noqa: E402
from analyzer.http import RequestParser, ResponseParser, deflate_agreement  # noqa: E402
from analyzer.tcp import TcpTracker  # noqa: E402

CLIENT, SERVER = 0, 1
API_KEY = "dgtest_0123456789abcdef0123456789abcdef"


def capture_paths() -> list[Path]:
    """Every sample capture, sorted by name."""
    return sorted(p for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))


def keylog_for(path: Path) -> Path | None:
    keys = path.with_suffix(".keys")
    return keys if keys.exists() else None


class _Recorder:
    """TcpTracker handler that keeps both directions' bytes (holes as zero bytes)."""

    def __init__(self, conn, out: list):
        self.conn = conn
        self.streams = [bytearray(), bytearray()]
        out.append(self)

    def data(self, direction, data, frame_no, ts):
        self.streams[direction] += data

    def hole(self, direction, size, frame_no, ts):
        self.streams[direction] += bytes(size)

    def tcp_end(self, kind, direction, frame_no, ts):
        pass

    def finish(self):
        pass


@lru_cache(maxsize=None)
def tcp_streams(path: Path) -> tuple[tuple[bytes, bytes], ...]:
    """(client bytes, server bytes) of every TCP connection in the capture, in stream order."""
    recorders: list = []
    tracker = TcpTracker(lambda conn: _Recorder(conn, recorders))
    decoder = PacketDecoder()
    with open_capture(path) as cap:
        for frame_no, ts, linktype, data in cap.packets():
            seg = decoder.decode(frame_no, linktype, data)
            if seg is not None:
                tracker.packet(frame_no, ts, *seg)
    tracker.finish()
    recorders.sort(key=lambda r: r.conn.stream)
    return tuple((bytes(r.streams[CLIENT]), bytes(r.streams[SERVER])) for r in recorders)


def _is_tls(stream: bytes) -> bool:
    return len(stream) > 5 and stream[0] == 22 and stream[1] == 3


@lru_cache(maxsize=None)
def http_exchanges() -> tuple:
    """(request head, request leftover, response message, response leftover, deflate, status)
    per plain-text connection with an HTTP request."""
    out = []
    for path in capture_paths():
        for client, server in tcp_streams(path):
            if not client or _is_tls(client):
                continue
            req_parser, resp_parser = RequestParser(), ResponseParser()
            req = req_parser.feed(client)
            resp = resp_parser.feed(server) if server else None
            if req is None:
                continue
            req_head = client[:req.head_size]
            # The whole response message: a 400/401 has a JSON body after its head.
            resp_head = server[:len(server) - len(resp_parser.leftover)] if resp is not None else b""
            deflate = None
            if resp is not None and resp.status == 101:
                deflate = deflate_agreement(", ".join(resp.header_all("sec-websocket-extensions")) or None)
            out.append((req_head, req_parser.leftover, resp_head,
                        resp_parser.leftover if resp is not None else b"", deflate,
                        resp.status if resp is not None else None))
    return tuple(out)


def http_heads() -> list[bytes]:
    heads = []
    for req_head, _rl, resp_head, _sl, _d, _s in http_exchanges():
        heads.append(req_head)
        if resp_head:
            heads.append(resp_head)
    return heads


def websocket_streams() -> list[tuple[bool, bytes, dict | None]]:
    """(from_client, frame bytes after the 101, deflate parameters) per direction."""
    out = []
    for _rh, req_left, _sh, resp_left, deflate, status in http_exchanges():
        if status != 101:
            continue
        out.append((True, req_left, deflate))
        out.append((False, resp_left, deflate))
    return out


def tls_streams() -> list[tuple[str, bytes, bytes]]:
    """(key log text, client records, server records) for the TLS captures with a .keys file
    (key log "" for the embedded-secrets pcapng, whose secrets are in the file)."""
    out = []
    for path in capture_paths():
        keys = keylog_for(path)
        keylog = keys.read_text() if keys else ""
        if not keys and not path.name.startswith("tls"):
            continue
        if not keys:
            with open_capture(path) as cap:
                for _ in cap.packets():
                    pass
                keylog = "".join(blob.decode("utf-8", "replace") for _, blob in cap.secrets)
        for client, server in tcp_streams(path):
            if _is_tls(client):
                out.append((keylog, client, server))
    return out


@lru_cache(maxsize=None)
def deepgram_sessions() -> tuple:
    """(capture name, path, query string, messages) per WebSocket session of the captures;
    messages are (direction, opcode, payload, size): every text message, binary ones up to
    400 per session (their first 64 bytes, as the pipeline keeps them)."""
    from analyzer.pipeline import Options, analyze_capture
    out = []
    for path in capture_paths():
        sessions: dict = {}

        def hook(session, direction, message, sessions=sessions):
            messages = sessions.setdefault(id(session), (session, []))[1]
            if message.opcode == 1 or (message.opcode == 2 and len(messages) < 400):
                messages.append((direction, message.opcode, bytes(message.data), message.size))
        keys = keylog_for(path)
        analyze_capture(str(path), Options(message_hook=hook, keylog=str(keys) if keys else None))
        for session, messages in sessions.values():
            target = session.handshake.target or ""
            out.append((path.name, session.handshake.path, target.partition("?")[2], tuple(messages)))
    return tuple(out)


DEEPGRAM_SEP = b"\xff\xfe\xfd"
DEEPGRAM_PATHS = ["/v1/listen", "/v2/listen", "/v1/speak", "/v1/agent/converse", None]


def encode_deepgram(path, query: str, messages) -> bytes:
    """A fuzz_deepgram input for one session (status 101, path by index)."""
    index = DEEPGRAM_PATHS.index(path) if path in DEEPGRAM_PATHS else 7
    pieces = [query.encode()]
    for direction, opcode, payload, size in messages:
        head = direction | (2 if opcode == 2 else 0) | (4 if size > len(payload) else 0)
        pieces.append(bytes([head | 0x10]) + payload)
    return bytes([index]) + DEEPGRAM_SEP.join(pieces)


def _segments_seed(path: Path) -> bytes:
    """fuzz_tcp mode 0: a capture's first 200 TCP segments, payloads cut to 63 bytes."""
    import struct
    decoder = PacketDecoder()
    out = bytearray(b"\x00\xff\xff")
    client = None
    with open_capture(path) as cap:
        for frame_no, _ts, linktype, data in cap.packets():
            seg = decoder.decode(frame_no, linktype, data)
            if seg is None:
                continue
            src, _dst, _sport, _dport, seq, ack, flags, payload, _missing = seg
            client = client or bytes(src)
            payload = bytes(payload[:63])
            out += bytes([int(bytes(src) == client)]) + struct.pack("!II", seq, ack)
            out += bytes([flags & 0x3F, 0, len(payload)]) + payload
            if frame_no >= 200:
                break
    return bytes(out)


def _name(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def _write(folder: Path, blobs) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for blob in blobs:
        (folder / _name(blob)).write_bytes(blob)
        n += 1
    return n


def write_corpora(out: Path, names: list[str] | None = None) -> dict[str, int]:
    """Write the seed corpus of each harness into out/<name>/; returns seeds per harness."""
    names = names or ["pcap", "tcp", "http", "websocket", "deflate", "tls", "deepgram", "pipeline"]
    counts = {}
    for name in names:
        folder = out / name
        if name in ("pcap", "pipeline"):
            import gzip
            small = [p.read_bytes() for p in capture_paths() if p.stat().st_size <= 256 * 1024]
            # gzip-compressed captures are read too (mtime 0: the same bytes every run)
            zipped = [gzip.compress(blob, mtime=0) for blob in small[:3]]
            counts[name] = _write(folder, small + zipped)
        elif name == "tcp":
            # Mode 1: one stream per seed (the harness cuts, reorders and duplicates it);
            # mode 0: the first packets of each capture as arbitrary segments.
            seeds = {b"\x01" + bytes(8) + s for path in capture_paths()
                     for pair in tcp_streams(path) for s in pair if s and len(s) <= 64 * 1024}
            seeds |= {_segments_seed(path) for path in capture_paths()}
            counts[name] = _write(folder, seeds)
        elif name == "http":
            seeds = set()
            for req_head, _rl, resp_head, resp_left, _d, _s in http_exchanges():
                seeds.add(b"\x00" + req_head)
                if resp_head:
                    seeds.add(b"\x01" + resp_head + resp_left[:2048])
            counts[name] = _write(folder, seeds)
        elif name == "websocket":
            seeds = set()
            for from_client, stream, deflate in websocket_streams():
                flags = int(from_client) | (2 if deflate is not None else 0)
                seeds.add(bytes([flags, 0]) + stream[:4096])
                seeds.add(bytes([flags | 4 * 7, 13]) + stream[4096:8192])
            counts[name] = _write(folder, seeds)
        elif name == "deflate":
            # The compressed payloads of dg_deflate.pcap, as sent (RSV1 frames, trailer removed).
            from analyzer.websocket import FrameParser
            seeds = set()
            for from_client, stream, deflate in websocket_streams():
                if deflate is None:
                    continue
                parser = FrameParser(from_client, keep_binary=1 << 20, keep_text=1 << 20)
                for f in parser.feed(stream, 1, 0.0):
                    if f.rsv & 4 and f.payload:
                        seeds.add(b"\x07" + f.payload)  # garbage mode, 15 bits, takeover
            for _name_, _path, _query, messages in deepgram_sessions()[:6]:
                texts = [p for _d, op, p, _s in messages if op == 1][:8]
                if texts:  # round-trip mode, with and without context takeover
                    seeds.add(b"\x17" + b"\xff\xfe".join(texts))
                    seeds.add(b"\x5c" + b"\xff\xfe".join(texts))
            counts[name] = _write(folder, seeds)
        elif name == "tls":
            seeds = set()
            for index, (_keylog, client, server) in enumerate(tls_streams()[:8]):
                seeds.add(bytes([index, 0]) + client[:8192])  # replace the client's stream
                seeds.add(bytes([index | 8, 3]) + server[:8192])
                seeds.add(bytes([index | 0x10, 7]) + b"\x00\x40\x01")  # patch one byte
                seeds.add(bytes([index | 0x38, 255]) + b"\x80\x00\x20")  # a hole, server
            counts[name] = _write(folder, seeds)
        elif name == "deepgram":
            seeds = set()
            for _name_, path, query, messages in deepgram_sessions():
                seeds.add(encode_deepgram(path, query, messages))
            counts[name] = _write(folder, seeds)
        else:
            raise ValueError(f"unknown harness {name!r}")
    return counts


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python fuzz/seeds.py OUT_DIR")
    for harness, n in write_corpora(Path(sys.argv[1])).items():
        print(f"{harness}: {n} seeds")
