"""What tshark says about a capture, as plain records (no model building here).

Two tshark runs (analyzer/engines/tshark.py runs them side by side):

* `stream_table()`: `tshark -T fields` over every packet, called directly.  It gives the
  packet count, the capture's first/last timestamps, each packet's tcp.stream and sender,
  and per stream the first and last packet, SYN / SYN-ACK, every FIN and RST, and the TCP
  gaps never filled.  pyshark is not used for this pass on purpose: it would build a Python
  object for every packet of the file (about 1 ms each), while these columns cost tshark
  almost nothing to print.
* `dissect()`: pyshark (`FileCapture`, PDML) over the packets that matter
  (`http || websocket || tls`), giving per packet the HTTP messages, every WebSocket frame
  (header fields, payload as tshark unmasked / reassembled / decompressed it, close code and
  reason) and the TLS handshake and record summary.  Only those protocols' trees are written
  (`-J`): Ethernet, IP and TCP (whose tcp.payload repeats every byte in hex) would make the
  PDML, and pyshark's parsing of it, several times larger; their facts come from the stream
  table (StreamTable.place).

PDML keeps the protocol tree in order, so the `data` items that carry a binary payload (or a
reassembled message) follow the WebSocket frame they belong to: several frames in one TCP
segment are told apart that way.  Exact bytes are taken from each field's `value` (hex of the
bytes the field covers, in the unmasked, reassembled or decompressed buffer tshark made),
never from its `show` text, which tshark escapes.
"""
from __future__ import annotations

import ipaddress
import re
import subprocess
from array import array
from dataclasses import dataclass, field
from typing import Optional

# Packets the session model needs from the dissection pass.  TCP ends and stream bounds
# come from stream_table(), so FIN/RST packets need not go through pyshark.
DISPLAY_FILTER = "http || websocket || tls"

STREAM_FIELDS = ("frame.number", "frame.time_epoch", "tcp.stream", "ip.src", "ipv6.src", "tcp.srcport",
                 "ip.dst", "ipv6.dst", "tcp.dstport", "tcp.flags", "tcp.len", "tcp.seq", "tcp.nxtseq",
                 "tcp.analysis.lost_segment", "icmp.type", "icmpv6.type")

# tshark's TCP preferences for the dissection pass.  Out-of-order segments are not reassembled
# by default in 4.0 (tcp.reassemble_out_of_order: FALSE): the frames they carry would be lost.
TCP_PREFS = {"tcp.reassemble_out_of_order": "TRUE"}

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10


class TsharkFailed(Exception):
    """tshark could not read the file (its last error line is the message)."""


def _endpoint(ip: str, port: str) -> tuple[bytes, int]:
    return ipaddress.ip_address(ip).packed, int(port)


# -- pass 1: stream table ---------------------------------------------------------------

@dataclass
class StreamInfo:
    stream: int
    first_frame: int
    first_time: float
    last_frame: int = 0
    last_time: float = 0.0
    first_data: Optional[tuple[int, float]] = None  # first packet with TCP payload
    first_sender: Optional[tuple[bytes, int]] = None
    syn_sender: Optional[tuple[bytes, int]] = None  # SYN without ACK
    synack_receiver: Optional[tuple[bytes, int]] = None
    syn_frame: Optional[int] = None
    # (kind "fin"|"rst", sender endpoint, frame, time): the first FIN of each sender, the first RST.
    ends: list = field(default_factory=list)
    endpoints: set = field(default_factory=set)
    # (sender endpoint, frame, time, missing bytes): tcp.analysis.lost_segment ("previous segment
    # not captured") after data of that sender was seen.
    holes: list = field(default_factory=list)
    next_seq: dict = field(default_factory=dict)  # sender -> highest tcp.nxtseq so far
    _gaps: dict = field(default_factory=dict)  # sender -> [[start, end, frame, time]] not yet filled


@dataclass
class StreamTable:
    packets: int = 0
    first_time: Optional[float] = None
    last_time: Optional[float] = None
    last_tcp_time: Optional[float] = None
    streams: dict = field(default_factory=dict)  # tcp.stream -> StreamInfo
    warnings: list = field(default_factory=list)  # tshark's stderr lines worth reporting
    # Per packet (index: frame number - 1): its tcp.stream (-1: none) and whether its sender is
    # the stream's first sender.  The dissection pass leaves TCP and IP out of its output (they
    # are most of it: tcp.payload is every byte in hex) and finds both here.
    frame_stream: array = field(default_factory=lambda: array("l"))
    frame_from_first: bytearray = field(default_factory=bytearray)

    def place(self, packets: list) -> dict:
        """tcp.stream -> [Packet] in frame order, with each packet's stream and sender filled in."""
        out: dict = {}
        n = len(self.frame_stream)
        for pkt in packets:
            i = pkt.frame - 1
            if not 0 <= i < n or self.frame_stream[i] < 0:
                continue
            info = self.streams[self.frame_stream[i]]
            pkt.stream = info.stream
            if self.frame_from_first[i]:
                pkt.src = info.first_sender
            else:
                pkt.src = next((e for e in info.endpoints if e != info.first_sender), info.first_sender)
            out.setdefault(info.stream, []).append(pkt)
        return out


def stream_table(tshark: str, path: str) -> StreamTable:
    cmd = [tshark, "-r", path, "-n", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=l"]
    for name in STREAM_FIELDS:
        cmd += ["-e", name]
    # Upper layers are not needed here; this keeps the pass cheap (tcp.stream does not depend on them).
    cmd += ["-o", "tcp.desegment_tcp_streams:FALSE"]
    table = StreamTable()
    streams = table.streams
    frame_stream, frame_from_first = table.frame_stream, table.frame_from_first
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            encoding="utf-8", errors="replace")
    try:
        for line in proc.stdout:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < len(STREAM_FIELDS) or not cols[0]:
                continue
            frame, ts = int(cols[0]), float(cols[1])
            table.packets = frame
            if table.first_time is None:
                table.first_time = ts
            table.last_time = ts
            while len(frame_stream) < frame:
                frame_stream.append(-1)
                frame_from_first.append(0)
            if not cols[2] or cols[14] or cols[15] or not (cols[3] or cols[4]):
                continue  # not TCP, or a TCP header quoted inside an ICMP error
            table.last_tcp_time = ts
            stream = int(cols[2])
            src = _endpoint(cols[4] or cols[3], cols[5])
            dst = _endpoint(cols[7] or cols[6], cols[8])
            flags = int(cols[9], 16) if cols[9] else 0
            info = streams.get(stream)
            if info is None:
                info = streams[stream] = StreamInfo(stream, frame, ts, first_sender=src)
            frame_stream[frame - 1] = stream
            frame_from_first[frame - 1] = src == info.first_sender
            info.last_frame, info.last_time = frame, ts
            info.endpoints.add(src)
            info.endpoints.add(dst)
            if cols[10] and int(cols[10]) > 0 and info.first_data is None:
                info.first_data = (frame, ts)
            seq = int(cols[11]) if cols[11] else None
            if seq is not None and cols[12]:
                _track_holes(info, src, frame, ts, seq, int(cols[12]), bool(cols[13]))
            if flags & TCP_SYN:
                if not flags & TCP_ACK:
                    if info.syn_sender is None:
                        info.syn_sender, info.syn_frame = src, frame
                elif info.synack_receiver is None:
                    info.synack_receiver = dst
            if flags & TCP_RST:
                if not any(e[0] == "rst" for e in info.ends):
                    info.ends.append(("rst", src, frame, ts))
            elif flags & TCP_FIN:
                if not any(e[0] == "fin" and e[1] == src for e in info.ends):
                    info.ends.append(("fin", src, frame, ts))
    finally:
        proc.stdout.close()
        err = proc.stderr.read()
        proc.stderr.close()
        rc = proc.wait()
    for info in streams.values():
        info.holes = _remaining_holes(info)
    problems = [e.strip() for e in err.splitlines()
                if e.strip() and "Running as user" not in e and "dangerous" not in e]
    if rc != 0 and not table.packets:
        raise TsharkFailed(tshark_problems(problems, path) if problems else f"tshark exited with status {rc}")
    table.warnings = problems
    return table


def _track_holes(info: StreamInfo, src, frame: int, ts: float, seq: int, nxtseq: int, lost: bool) -> None:
    """tshark flags "previous segment not captured" (tcp.analysis.lost_segment) as soon as data
    skips ahead; a later out-of-order or retransmitted segment may still fill the gap, so a gap
    only becomes a hole if nothing fills it by the end."""
    top = info.next_seq.get(src)
    gaps = info._gaps.setdefault(src, [])
    if lost and top is not None and seq > top:
        gaps.append([top, seq, frame, ts])
    elif top is not None and seq < top and gaps:
        kept = []
        for a, b, f, t in gaps:
            if nxtseq <= a or seq >= b:
                kept.append([a, b, f, t])
                continue
            if seq > a:
                kept.append([a, seq, f, t])
            if nxtseq < b:
                kept.append([nxtseq, b, f, t])
        gaps[:] = kept
    info.next_seq[src] = nxtseq if top is None else max(top, nxtseq)


def _remaining_holes(info: StreamInfo) -> list:
    """(sender, frame, time, missing bytes) per gap never filled, in frame order."""
    out: dict = {}
    for src, gaps in info._gaps.items():
        for a, b, f, t in gaps:
            key = (src, f, t)
            out[key] = out.get(key, 0) + (b - a)
    return sorted(((src, f, t, n) for (src, f, t), n in out.items()), key=lambda h: h[1])


# -- pass 2: dissection through pyshark ---------------------------------------------------

@dataclass
class HttpMessage:
    kind: str  # request | response
    frame: int
    time: float
    method: Optional[str] = None
    target: Optional[str] = None
    path: Optional[str] = None
    query: Optional[str] = None
    version: Optional[str] = None
    status: Optional[int] = None
    reason: Optional[str] = None
    headers: list = field(default_factory=list)  # [[name, value]]
    body: Optional[bytes] = None


@dataclass
class WsFrame:
    """One WebSocket frame as tshark dissected it."""
    frame: int
    time: float
    fin: bool
    rsv: int  # RSV1 = 4, RSV2 = 2, RSV3 = 1 (websocket.rsv >> 4)
    opcode: int
    masked: bool
    mask: Optional[bytes]
    length: int  # declared payload length (7-bit, or the 16/64-bit extended field)
    length_field: int  # the 7-bit field as sent (126 / 127 announce an extended length)
    payload: Optional[bytes] = None  # what tshark shows for this frame, unmasked (None: nothing)
    compressed: bool = False  # websocket.pmc
    close_code: Optional[int] = None
    close_reason: Optional[bytes] = None
    fragments: Optional[list] = None  # reassembled message: [(frame, bytes)] per fragment
    reassembled: Optional[bytes] = None  # the reassembled (and decompressed) message payload
    inflate_failed: bool = False


@dataclass
class TlsInfo:
    records: list = field(default_factory=list)  # (outer content type, length) per record
    client_hello: Optional[dict] = None
    server_hello: Optional[dict] = None
    alerts: list = field(default_factory=list)  # (level, description)
    handshake_types: set = field(default_factory=set)
    decrypted: bool = False  # tshark dissected something inside (it had the keys)


@dataclass
class Packet:
    frame: int
    time: float
    stream: Optional[int] = None  # filled in from the stream table (StreamTable.place)
    src: Optional[tuple] = None
    http: list = field(default_factory=list)
    ws: list = field(default_factory=list)
    tls: Optional[TlsInfo] = None


def _field(layer, name):
    return layer.get_field(name)


def _show(layer, name) -> Optional[str]:
    f = layer.get_field(name)
    if f is None:
        return None
    return str(f.show)


def _raw(f) -> bytes:
    value = getattr(f, "raw_value", None)
    if not value:
        return b""
    try:
        return bytes.fromhex(value)
    except ValueError:
        return b""


def _raw_field(layer, name) -> Optional[bytes]:
    f = layer.get_field(name)
    if f is None:
        return None
    return _raw(f.main_field if hasattr(f, "main_field") else f)


def _all(layer, name) -> list:
    f = layer.get_field(name)
    if f is None:
        return []
    return list(f.all_fields)


def _bool(value: Optional[str]) -> bool:
    return value is not None and value.strip().lower() in ("1", "true")


def _int(value: Optional[str], default: Optional[int] = None) -> Optional[int]:
    if value is None or value == "":
        return default
    try:
        return int(value, 0)
    except ValueError:
        try:
            return int(value)
        except ValueError:
            return default


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _header_lines(layer, name: str) -> list:
    headers = []
    for f in _all(layer, name):
        line = _text(_raw(f)).rstrip("\r\n")
        key, colon, value = line.partition(":")
        if colon:
            headers.append([key.rstrip(" \t"), value.strip(" \t")])
    return headers


def _http(layer, frame: int, ts: float) -> Optional[HttpMessage]:
    if layer.get_field("request_method") is not None:
        target = _text(_raw_field(layer, "request_uri") or b"")
        path = _raw_field(layer, "request_uri_path")
        query = _raw_field(layer, "request_uri_query")
        return HttpMessage(
            "request", frame, ts, method=_text(_raw_field(layer, "request_method") or b""), target=target,
            path=_text(path) if path is not None else target.partition("?")[0],
            query=_text(query) if query is not None else target.partition("?")[2],
            version=_show(layer, "request_version"), headers=_header_lines(layer, "request_line"))
    if layer.get_field("response_code") is not None:
        phrase = _raw_field(layer, "response_phrase")
        body = _raw_field(layer, "file_data")
        return HttpMessage(
            "response", frame, ts, version=_show(layer, "response_version"),
            status=_int(_show(layer, "response_code")), reason=_text(phrase) if phrase is not None else "",
            headers=_header_lines(layer, "response_line"), body=body or None)
    return None


def _ws(layer, frame: int, ts: float) -> WsFrame:
    length_field = _int(_show(layer, "payload_length"), 0)
    length = length_field
    if length_field == 126:
        length = _int(_show(layer, "payload_length_ext_16"), 0)
    elif length_field == 127:
        length = _int(_show(layer, "payload_length_ext_64"), 0)
    masked = _bool(_show(layer, "mask"))
    mask = _raw_field(layer, "masking_key") if masked else None
    rsv = _int(_show(layer, "rsv"), 0)
    f = WsFrame(frame, ts, fin=_bool(_show(layer, "fin")), rsv=rsv if rsv < 8 else rsv >> 4,
                opcode=_int(_show(layer, "opcode"), 0), masked=masked, mask=mask, length=length,
                length_field=length_field, compressed=_bool(_show(layer, "pmc")))
    for name in ("payload_text", "payload_ping", "payload_pong", "payload_unknown", "payload_continue"):
        raw = _raw_field(layer, name)
        if raw is not None:
            f.payload = raw
            break
    code = layer.get_field("payload_close_status_code")
    if code is not None:
        f.close_code = _int(str(code.show))
        f.close_reason = _raw_field(layer, "payload_close_reason") or b""
    if layer.get_field("decompression_failed_expert") is not None:
        f.inflate_failed = True
    return f


def _attach(f: WsFrame, layer) -> None:
    """A `data` wrapper after a frame: its binary payload, a reassembly, a continuation's bytes."""
    fragments = _all(layer, "websocket_fragment")
    if fragments:
        f.fragments = [(_int(str(x.show)), _raw(x)) for x in fragments]
    for name in ("data_data", "data"):
        raw = _raw_field(layer, name)
        if raw is not None:
            f.payload = raw
            break
    else:
        raw = _raw_field(layer, "websocket_payload_continue")
        if raw is not None and f.payload is None:
            f.payload = raw
    if layer.get_field("websocket_decompression_failed_expert") is not None:
        f.inflate_failed = True


def _tls(layer, info: TlsInfo) -> None:
    # Record type as on the wire (the outer type: 23 for every TLS 1.3 encrypted record, which
    # tshark shows as tls.record.opaque_type, with the decrypted inner type as content_type).
    # A record's type byte is 3 bytes before its length field, in the same buffer.
    opaque = {_int(str(x.pos)) for x in _all(layer, "record_opaque_type")}
    plain = {_int(str(x.pos)): _int(str(x.show)) for x in _all(layer, "record_content_type")}
    for x in _all(layer, "record_length"):
        at = _int(str(x.pos), 0) - 3
        outer = 23 if at in opaque else plain.get(at)
        if outer is not None:
            info.records.append((outer, _int(str(x.show), 0)))
    hs_types = {str(x.show) for x in _all(layer, "handshake_type")}
    info.handshake_types |= {int(t) for t in hs_types if t.isdigit()}
    if "1" in hs_types:
        info.client_hello = {
            "sni": _show(layer, "handshake_extensions_server_name"),
            "alpn_offered": [str(x.show) for x in _all(layer, "handshake_extensions_alpn_str")],
            "versions_offered": [_int(str(x.show)) for x in _all(layer, "handshake_extensions_supported_version")],
        }
    if "2" in hs_types:
        versions = [_int(str(x.show)) for x in _all(layer, "handshake_extensions_supported_version")]
        info.server_hello = {
            "version": versions[0] if versions else _int(_show(layer, "handshake_version")),
            "cipher_suite": _int(_show(layer, "handshake_ciphersuite")),
            "alpn": _show(layer, "handshake_extensions_alpn_str"),
            "extensions": [_int(str(x.show)) for x in _all(layer, "handshake_extension_type")],
        }
    levels = [_int(str(x.show)) for x in _all(layer, "alert_message_level")]
    descs = [_int(str(x.show)) for x in _all(layer, "alert_message_desc")]
    info.alerts.extend(zip(levels, descs))


# Only these protocols' trees are written out (tshark -J); the others appear as empty
# "filtered" protocol items, which still say what a packet carries.
PDML_PROTOCOLS = "websocket websocket.fragments websocket.payload.continue http tls data"


def dissect(tshark: str, path: str, decode_as: dict, prefs: dict, version: Optional[str] = None,
            keep_binary: Optional[int] = None) -> list:
    """([Packet] in frame order, problem): from pyshark's PDML (stream and sender:
    StreamTable.place); problem is None, or one line saying how tshark failed (after a cut
    or corrupt record it exits with status 2, and the packets before it are returned: the
    stream table's warnings tell a partial capture from a failure).

    keep_binary: keep only this many bytes of a whole (unfragmented, uncompressed) binary
    frame's payload, as the native engine does (None: keep everything, for audio export).
    """
    import pyshark

    cap = pyshark.FileCapture(path, display_filter=DISPLAY_FILTER, decode_as=decode_as or None,
                              override_prefs={**TCP_PREFS, **prefs}, keep_packets=False, tshark_path=tshark,
                              custom_parameters=["-J", PDML_PROTOCOLS])
    if version and hasattr(cap, "_Capture__tshark_version"):
        # pyshark runs `tshark -v` for every capture object to pick its options; we know it already
        # (one tshark start saved per file: about a third of the time on small captures).
        try:
            from packaging.version import parse
            cap._Capture__tshark_version = parse(version)
        except Exception:
            pass
    out: list = []
    failure: Optional[Exception] = None
    try:
        for p in cap:
            pkt = _packet(p)
            if keep_binary is not None:
                for f in pkt.ws:
                    if f.opcode == 2 and f.fin and not f.compressed and f.payload is not None:
                        f.payload = f.payload[:keep_binary]
            out.append(pkt)
    except Exception as e:
        failure = e
    finally:
        try:
            cap.close()
        except Exception as e:
            failure = failure or e
        # pyshark raises tshark's exit status again when the object is collected ("Exception
        # ignored in ... TSharkCrashException" and a traceback): it has been handled here.
        getattr(cap, "_running_processes", set()).clear()
    if failure is not None and not type(failure).__module__.startswith("pyshark"):
        raise failure
    return out, None if failure is None else pyshark_problem(failure)


def pyshark_problem(e: Exception) -> str:
    """pyshark's exception as one line: tshark's exit status and its last error line."""
    text = str(e)
    status = re.search(r"retcode: (-?\d+)", text)
    last = re.search(r"Last error line: (.*)", text)
    if status:
        detail = last.group(1).strip() if last else ""
        return f"tshark exited with status {status.group(1)}" + (f": {detail}" if detail else "")
    return text.splitlines()[0] if text.strip() else type(e).__name__


def tshark_problems(lines: list, path: str) -> str:
    """tshark's complaint about a file on one line, the file's name left out (the caller's
    line starts with it): 'The file appears to be damaged or corrupt. (pcap: File has ...)'."""
    return " ".join(line.removeprefix("tshark: ").replace(f' "{path}"', "") for line in lines)


def _truncated(message: str) -> bool:
    return "cut short" in message or "appears to be damaged or corrupt" in message


def _packet(p) -> Packet:
    frame = int(p.number)
    ts = float(p.sniff_timestamp)
    pkt = Packet(frame, ts)
    layers = p.layers
    start = next((i + 1 for i, layer in enumerate(layers) if layer.layer_name == "tcp"), len(layers))
    current: Optional[WsFrame] = None
    for layer in layers[start:]:
        name = layer.layer_name
        if name == "websocket":
            current = _ws(layer, frame, ts)
            pkt.ws.append(current)
        elif name.lower() == "data" and current is not None:
            _attach(current, layer)
        elif name == "http":
            msg = _http(layer, frame, ts)
            if msg is not None:
                pkt.http.append(msg)
        elif name == "tls":
            if pkt.tls is None:
                pkt.tls = TlsInfo()
            _tls(layer, pkt.tls)
        elif pkt.tls is not None:
            # A protocol above TLS: the record was decrypted (tls.app_data_proto alone only
            # names the protocol a decode-as rule expects, with or without keys).
            pkt.tls.decrypted = True
    if pkt.tls is not None and (pkt.http or pkt.ws):
        # HTTP or WebSocket in a TLS packet was read from decrypted records.  The loop above
        # only notices layers it does not handle (data-text-lines after a text frame): a
        # session of binary and close frames only (tls13_multi's DATA-0000) was "no keys".
        pkt.tls.decrypted = True
    for f in pkt.ws:
        if f.fragments is not None:
            # The reassembled message shows as text or as data after the final fragment.
            f.reassembled = f.payload
    return pkt
