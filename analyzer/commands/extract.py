"""`dgcap extract CAPTURE --session N`: the ticket capture.

A pcapng holding only the packets of one session's TCP connection(s), as captured (link
layer included), in their original order, with:

* a Decryption Secrets Block with only that session's TLS secrets (matched by client
  random), so Wireshark/tshark decrypt it without a key log and nothing else can be;
* a comment on every evidence frame of every finding (`dgcap: error deepgram-close: ...`);
* a section comment saying what the file is (source name and SHA-256, session, original
  frame numbers);
* secrets that travel in clear (Authorization, the `token` subprotocol, query tokens in
  the request line) overwritten in the packets with the same number of bytes, so TCP
  sequence numbers still line up, and the TCP checksum updated (RFC 1624).

Three passes over the capture, none keeping more than one session's head in memory: the
analysis (sessions, findings), a selection pass (which packets belong to the session's
tcp.stream, numbered like Wireshark by the same tracker; the first bytes of each
direction, where the handshake and its secrets are), and the writing pass.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import struct
import sys
import tempfile
from array import array
from typing import Optional
from urllib.parse import quote, quote_plus, unquote_plus

from .. import __version__
from ..cli import EXIT_INPUT, EXIT_OK, error, exit_codes_help
from ..model import CLIENT, SERVER, Session
from .common import add_capture_arguments, analyze_args, pick_session

# Bytes at the start of each direction searched for secrets: the HTTP upgrade request and
# response (Options.max_http_header bounds them the same way).
HEAD_BYTES = 64 << 10
SEQ_MASK = 0xFFFFFFFF

_EPILOG = """\
what is in the file:
  the packets of the session's TCP connection (tcp.stream), as captured, in order; a
  Decryption Secrets Block with that session's TLS secrets only (from --keylog,
  SSLKEYLOGFILE or the capture's own embedded secrets); a packet comment on every frame
  a finding points at (tshark -Y 'frame.comment contains "dgcap"'); a comment on the
  section header with the source capture's name and SHA-256 and the original frame
  numbers.  Frame numbers in the new file start at 1: finding comments say the original
  number.

secrets:
  by default API keys and tokens sent in clear (Authorization, Sec-WebSocket-Protocol
  token, ?token= / ?access_token= ...) are overwritten in the packets with '*' (the last
  4 characters kept, the length unchanged, TCP checksums updated).  Inside TLS they are
  encrypted; when the session's TLS secrets are embedded, the records carrying them are
  opened, the key overwritten and the records sealed again with the same keys.
  --keep-secrets keeps the original bytes and says so in the section comment.

""" + exit_codes_help("written", None, "input or usage error (bad capture, no such session or finding; one line\n"
                                     "     on stderr)")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "extract", help="write one session's packets to a small annotated pcapng for a ticket",
        description="Write the packets of one session (its TCP connection) to a pcapng with its "
                    "TLS secrets only, finding comments and secrets redacted.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_capture_arguments(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", type=int, metavar="N",
                       help="session N (numbered as in `dgcap report`)")
    which.add_argument("--finding", metavar="ID",
                       help="every session that has this finding (e.g. deepgram-close)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="output file (default <capture-stem>.session<N>.pcapng, or "
                        "<capture-stem>.<ID>.pcapng with --finding, in the current folder)")
    p.add_argument("--keep-secrets", action="store_true",
                   help="do not overwrite API keys and tokens in the packets")


def run(args) -> int:
    from .audio import capture_stem

    path = args.capture
    keylog, report = analyze_args(args)
    if report is None:
        return EXIT_INPUT
    if args.session is not None:
        session = pick_session(path, report.sessions, args.session)
        if session is None:
            return EXIT_INPUT
        sessions = [session]
        default_name = f"{capture_stem(path)}.session{args.session}.pcapng"
    else:
        sessions = [s for s in report.sessions if any(f.id == args.finding for f in s.findings)]
        if not sessions:
            ids = sorted({f.id for s in report.sessions for f in s.findings})
            known = f"; findings present: {', '.join(ids)}" if ids else "; no session has a finding"
            error(f"{path}: no session has the finding {args.finding!r}{known}")
            return EXIT_INPUT
        default_name = f"{capture_stem(path)}.{_safe_name(args.finding)}.pcapng"
    output = args.output or default_name
    if os.path.isdir(output):
        error(f"{output}: is a folder; give a file name")
        return EXIT_INPUT
    folder = os.path.dirname(output)
    if folder and not os.path.isdir(folder):  # checked here: the temporary file's name would be the error's
        error(f"-o {output}: folder {folder} does not exist")
        return EXIT_INPUT
    if args.keep_secrets:
        sys.stderr.write("dgcap: warning: --keep-secrets: the extracted capture contains API keys "
                         "and tokens as sent\n")
    try:
        result = extract_sessions(path, sessions, output, keylog, keep_secrets=args.keep_secrets)
    except UnredactableSecret as e:
        error(f"{path}: {e}")
        return EXIT_INPUT
    print(result.summary(output))
    for f in report.findings:
        if f.id in ("capture-truncated", "analysis-interrupted"):
            result.notes.append(f"the source capture is incomplete, so is the extract: {f.message}")
    for note in result.notes:
        sys.stderr.write(f"dgcap: note: {note}\n")
    return EXIT_OK


class UnredactableSecret(Exception):
    """A secret sits in a packet whose bytes cannot be rewritten in place."""


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text) or "finding"


# -- the work ----------------------------------------------------------------------------------

class ExtractResult:
    def __init__(self):
        self.packets = 0
        self.first_frame: Optional[int] = None
        self.last_frame: Optional[int] = None
        self.comments = 0  # packets with a finding comment
        self.redacted_packets = 0
        self.tls_secret_sessions = 0
        self.notes: list[str] = []
        self.sessions: list[Session] = []

    def summary(self, output: str) -> str:
        which = ", ".join(f"session {s.index} (tcp.stream {s.tcp_stream})" for s in self.sessions)
        parts = [f"{self.packets} packets", which]
        if self.first_frame is not None:
            parts.append(f"original frames {self.first_frame}-{self.last_frame}")
        parts.append(f"{self.comments} packet comments")
        if self.tls_secret_sessions:
            parts.append(f"TLS secrets of {self.tls_secret_sessions} session(s)")
        if self.redacted_packets:
            parts.append(f"secrets overwritten in {self.redacted_packets} packet(s)")
        return f"wrote {output}: " + ", ".join(parts)


class _Selection:
    """Pass 2's result: which frames to keep, where the secrets are, the TLS secrets."""

    def __init__(self):
        self.frames = array("I")  # kept frame numbers, ascending
        # (stream, direction) -> [bytearray head, base seq, [(frame, offset, length)...]]
        self.heads: dict[tuple[int, int], list] = {}
        self.embedded_secrets: list = []


def extract_sessions(path: str, sessions: list[Session], output: str, keylog: Optional[str],
                     keep_secrets: bool = False) -> ExtractResult:
    result = ExtractResult()
    result.sessions = sessions
    streams = {}
    for s in sessions:
        for stream in session_streams(s):
            streams[stream] = s
    selection = _select(path, streams)
    tls_secrets, tls_notes = _tls_secrets(sessions, keylog, selection.embedded_secrets)
    result.notes.extend(tls_notes)
    result.tls_secret_sessions = sum(1 for found in tls_secrets.values() if found)
    patches = {} if keep_secrets else _secret_patches(selection, streams, tls_secrets)
    comments = _finding_comments(sessions)
    frames = selection.frames
    if frames:
        result.first_frame, result.last_frame = frames[0], frames[-1]
    section = _section_comments(path, sessions, result, len(frames), keep_secrets, bool(patches))
    folder = os.path.dirname(os.path.abspath(output))
    fd, tmp = tempfile.mkstemp(prefix=".dgcap-", suffix=".pcapng", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            _write(path, out, frames, patches, comments, _keylog_lines(sessions, tls_secrets),
                   section, result)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return result


def session_streams(session: Session) -> list[int]:
    """The tcp.stream numbers whose packets make up the session."""
    return [session.tcp_stream]


def _select(path: str, streams: dict[int, Session]) -> _Selection:
    """Pass 2: number connections like the pipeline does, keep the chosen streams' frames."""
    from ..capture import PacketDecoder, format_address, open_capture
    from ..tcp import TcpTracker

    selection = _Selection()
    decoder = PacketDecoder()
    tracker = TcpTracker(lambda conn: None)  # numbering only: nothing is reassembled
    clients = {stream: s.client for stream, s in streams.items()}
    cap = open_capture(path)
    with cap:
        for frame_no, ts, linktype, data in cap.packets():
            seg = decoder.decode(frame_no, linktype, data)
            if seg is None:
                continue
            tracker.segment(frame_no, ts, seg)
            src, dst, sport, dport, seq, _ack, flags, payload, _missing = seg
            stream = tracker.connection(src, dst, sport, dport).stream
            if stream not in streams:
                continue
            selection.frames.append(frame_no)
            direction = CLIENT if format_address(src, sport) == clients[stream] else SERVER
            head = selection.heads.get((stream, direction))
            if head is None:
                head = selection.heads[(stream, direction)] = [bytearray(), None, []]
            if flags & 0x02:  # SYN: the data starts one after its sequence number
                head[1] = (seq + 1) & SEQ_MASK
                continue
            if not payload:
                continue
            if head[1] is None:
                head[1] = seq
            offset = (seq - head[1]) & SEQ_MASK
            if offset >= HEAD_BYTES:
                continue
            buf = head[0]
            end = min(offset + len(payload), HEAD_BYTES)
            if len(buf) < end:
                buf.extend(b"\x00" * (end - len(buf)))
            buf[offset:end] = payload[:end - offset]
            head[2].append((frame_no, offset, len(payload)))
        selection.embedded_secrets = list(cap.secrets)
    return selection


def masked_bytes(secret: bytes) -> bytes:
    """The same number of bytes: '*' and the last 4 characters, like the reports' masks."""
    keep = 4 if len(secret) >= 12 else 0
    return b"*" * (len(secret) - keep) + secret[len(secret) - keep:]


def _secret_forms(session: Session) -> list[bytes]:
    """Every spelling of the session's secrets that can stand in its packets: as found, and
    URL-encoded as the request line actually carried it (any percent-encoding)."""
    from ..redact import session_secrets

    secrets = session_secrets(session)
    forms = set()
    for secret in secrets:
        for form in (secret, quote(secret, safe=""), quote_plus(secret), quote(secret)):
            forms.add(form)
    raw_query = (session.handshake.target or "").partition("?")[2]
    for part in re.split(r"[&;]", raw_query):
        value = part.partition("=")[2]
        if value and unquote_plus(value) in secrets:
            forms.add(value)
    return sorted((f.encode("utf-8") for f in forms), key=len, reverse=True)


def _secret_patches(selection: _Selection, streams: dict[int, Session],
                    tls_secrets: dict[int, dict]) -> dict[int, list]:
    """frame -> [(payload offset, new bytes)] overwriting every secret in the heads: in the
    bytes as sent, and inside the TLS records when the session's secrets are embedded."""
    from ..tls.reseal import application_opener, reseal_records

    patches: dict[int, list] = {}
    for (stream, direction), (buf, _base, packets) in selection.heads.items():
        session = streams[stream]
        forms = _secret_forms(session)
        if not forms:
            continue
        ranges = [(start, start + len(form), masked_bytes(form))
                  for form in forms for start in _find_all(buf, form)]
        secrets = tls_secrets.get(session.index)
        if secrets and session.tls is not None:
            tls = session.tls
            opener = application_opener(tls.cipher_suite_id, secrets, _hex(tls.client_random),
                                        _hex(tls.server_random) or None, direction)
            if opener is not None:
                def edit(plain: bytes) -> bytes:
                    for form in forms:
                        plain = plain.replace(form, masked_bytes(form))
                    return plain
                ranges += [(offset, offset + len(new), new)
                           for offset, new in reseal_records(opener, bytes(buf), edit)]
        for start, end, new in ranges:
            for frame, offset, length in packets:  # retransmissions get patched too
                lo, hi = max(start, offset), min(end, offset + length)
                if lo < hi:
                    patches.setdefault(frame, []).append((lo - offset, new[lo - start:hi - start]))
    return patches


def _find_all(buf: bytes, needle: bytes):
    start = buf.find(needle)
    while start >= 0:
        yield start
        start = buf.find(needle, start + 1)


def _hex(text) -> bytes:
    try:
        return bytes.fromhex(text or "")
    except ValueError:
        return b""


def _client_random(session: Session) -> Optional[str]:
    return session.tls.client_random if session.tls is not None else None


def _finding_comments(sessions: list[Session]) -> dict[int, list[str]]:
    from ..redact import redact_text, session_secrets

    comments: dict[int, list[str]] = {}
    for s in sessions:
        literals = session_secrets(s)
        for f in s.findings:
            text = " ".join(redact_text(f.message, literals).split())
            for frame in sorted(set(f.frames)):
                comments.setdefault(frame, []).append(
                    f"dgcap: {f.severity} {f.id}: {text} (session {s.index}, original No. {frame})")
    return comments


def _tls_secrets(sessions: list[Session], keylog: Optional[str], embedded: list):
    """session index -> {label: secret} for its client random; notes on what is missing."""
    from ..capture.pcapng_writer import TLS_KEY_LOG_SECRETS
    from ..tls import KeyLog

    log = KeyLog()
    if keylog:
        log.load_file(keylog)
    for kind, blob in embedded:
        if kind == TLS_KEY_LOG_SECRETS:
            log.load_text(blob.decode("utf-8", "replace"))
    found: dict[int, dict] = {}
    notes = []
    for s in sessions:
        if not s.transport.startswith("tls"):
            continue
        client_random = _hex(_client_random(s))
        found[s.index] = dict(log.secrets(client_random)) if client_random else {}
        if not found[s.index]:
            notes.append(f"session {s.index}: no TLS secrets known for it (give --keylog): "
                         "the extracted file stays encrypted")
    return found, notes


# What decryption needs: exporter secrets (keying material for other protocols) stay out.
DECRYPTION_LABELS = frozenset({"CLIENT_RANDOM", "CLIENT_EARLY_TRAFFIC_SECRET",
                               "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                               "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"})


def _keylog_lines(sessions: list[Session], tls_secrets: dict[int, dict]) -> list[str]:
    """NSS key-log lines of the chosen sessions only, and only what decryption needs."""
    lines = []
    for s in sessions:
        random_hex = _client_random(s)
        for label, secret in sorted(tls_secrets.get(s.index, {}).items()):
            if label in DECRYPTION_LABELS:
                lines.append(f"{label} {random_hex} {secret.hex()}")
    return lines


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _section_comments(path: str, sessions: list[Session], result: ExtractResult, packets: int,
                      keep_secrets: bool, redacted: bool) -> list[str]:
    first, last = result.first_frame, result.last_frame
    lines = [f"dgcap {__version__} extract of {os.path.basename(path)} "
             f"(SHA-256 {_sha256(path)})"]
    for s in sessions:
        lines.append(f"session {s.index}: {s.client} -> {s.server}, tcp.stream {s.tcp_stream} in "
                     f"the original, {s.transport}")
    span = f"original frames {first} to {last}" if first is not None else "no packets"
    lines.append(f"{packets} packets, {span}; frame numbers in this file differ from the "
                 "original's: finding comments give the original No.")
    if keep_secrets:
        lines.append("--keep-secrets: API keys and tokens are kept in the packets as sent")
    elif redacted:
        lines.append("API keys and tokens are overwritten with '*' in the packets (same length, "
                     "the last 4 characters kept; inside TLS the records are sealed again with "
                     "their own keys; TCP checksums updated)")
    if result.tls_secret_sessions:
        lines.append("TLS secrets of these sessions only are embedded (Decryption Secrets Block)")
    return lines


def _write(path: str, out, frames, patches: dict, comments: dict, keylog_lines: list[str],
           section: list[str], result: ExtractResult) -> None:
    from ..capture import PacketDecoder, open_capture
    from ..capture.pcapng_writer import TLS_KEY_LOG_SECRETS, PcapngWriter

    writer = PcapngWriter(out, comments=["\n".join(section)], application=f"dgcap {__version__}")
    secrets = "".join(line + "\n" for line in keylog_lines)
    if secrets:
        writer.secrets(TLS_KEY_LOG_SECRETS, secrets.encode("ascii"))
    cap = open_capture(path)
    decoder = PacketDecoder()
    wanted = iter(frames)
    next_frame = next(wanted, None)
    with cap:
        for frame_no, ts, linktype, data in cap.packets():
            if next_frame is None:
                break
            if frame_no != next_frame:
                continue
            next_frame = next(wanted, None)
            if frame_no in patches:
                try:
                    data = patch_tcp_payload(data, decoder.decode(frame_no, linktype, data),
                                             patches[frame_no])
                except ValueError:
                    # Never write the packet as it is: it carries the secret.
                    raise UnredactableSecret(
                        f"cannot overwrite the API key in frame {frame_no} (its TCP payload is not "
                        "in that one packet, e.g. IP fragments); nothing written (--keep-secrets "
                        "writes the packets as captured)") from None
                result.redacted_packets += 1
            notes = comments.get(frame_no, ())
            if notes:
                result.comments += 1
            writer.packet(ts, linktype, data, ticks_per_second=_resolution(cap, linktype),
                          comments=notes)
            result.packets += 1


def _resolution(cap, linktype: int) -> int:
    """Time stamp ticks per second to write: the finest of the source's interfaces of that
    link type read so far (pcapng interfaces arrive with the packets), as a power of ten."""
    finest = max((tps for lt, _snaplen, tps in cap.interfaces if lt == linktype), default=1_000_000)
    return finest if finest in _POWERS_OF_TEN else 1_000_000_000


_POWERS_OF_TEN = frozenset(10 ** e for e in range(10))


def _ones_sum(data: bytes, odd_start: bool) -> int:
    """16-bit one's complement sum of `data` placed at an odd or even offset."""
    if odd_start:
        data = b"\x00" + data
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def patch_tcp_payload(data, seg, edits: list) -> bytes:
    """Overwrite bytes of a packet's TCP payload and update its TCP checksum (RFC 1624).

    `seg` is PacketDecoder's tuple for the packet; the TCP header is found right before
    the payload (ports and sequence number must match), whatever the link layer.
    """
    if seg is None:
        raise ValueError("not a TCP segment on its own")
    buf = bytearray(data)
    _src, _dst, sport, dport, seq, _ack, _flags, payload, _missing = seg
    payload = bytes(payload)
    if any(offset < 0 or offset + len(new) > len(payload) for offset, new in edits):
        raise ValueError("edit outside the captured payload")
    probe = struct.pack("!HHI", sport, dport, seq)
    tcp_start = buf.find(probe)
    while tcp_start >= 0:
        header_len = (buf[tcp_start + 12] >> 4) * 4 if tcp_start + 12 < len(buf) else 0
        start = tcp_start + header_len
        if header_len >= 20 and buf[start:start + len(payload)] == payload:
            break
        tcp_start = buf.find(probe, tcp_start + 1)
    else:
        raise ValueError("TCP header and payload not found in the packet")
    checksum = struct.unpack_from("!H", buf, tcp_start + 16)[0]
    total = ~checksum & 0xFFFF
    for offset, new in edits:
        at = start + offset
        old = bytes(buf[at:at + len(new)])
        odd = (at - tcp_start) % 2 == 1
        total += (~_ones_sum(old, odd) & 0xFFFF) + _ones_sum(new, odd)
        buf[at:at + len(new)] = new
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    struct.pack_into("!H", buf, tcp_start + 16, ~total & 0xFFFF)
    return bytes(buf)
