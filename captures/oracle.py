"""Independent oracle for the sample captures: tshark's dissection -> expected sessions.

Nothing here imports dgcap.  tshark (Wireshark's dissectors) decodes the file; this
module only groups tshark's packets into TCP streams and applies the documented
semantics (frame counts, close frames, gaps, generic findings) to tshark's frames.

Conventions (the same as dgcap's JSON contract):
* frame numbers are Wireshark's "No."; a WebSocket frame's number is the packet that
  carries its last byte (tshark reports reassembled frames there).
* ``binary`` counts every opcode-2 frame, ``empty_binary`` the subset with no payload;
  ``continuation`` counts opcode-0 frames; ``payload_bytes`` sums the declared payload
  lengths of all frames of that direction (control frames included; compressed size).
* gaps: see ``compute_gaps``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from decimal import Decimal
from typing import Any, Iterable, Optional
from urllib.parse import parse_qs, urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPCODES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
GENERIC_FINDINGS = ["handshake-failed", "handshake-unanswered", "bad-accept", "client-gap",
                    "audio-gap", "empty-binary-frame", "abnormal-closure",
                    "unmasked-client-frame", "masked-server-frame", "control-frame-too-long"]


# ---------------------------------------------------------------------- tshark
def tshark_version() -> str:
    out = subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0].strip() if out else "tshark"


def run_tshark(path: str, port: int, *, tls: bool = False, keylog: Optional[str] = None,
               extra: Iterable[str] = ()) -> list[dict]:
    cmd = ["tshark", "-n", "-r", path, "-T", "json", "--no-duplicate-keys",
           "-J", "frame eth ip ipv6 tcp tls http websocket"]
    if tls:
        cmd += ["-d", f"tcp.port=={port},tls", "-d", f"tls.port=={port},http"]
    else:
        cmd += ["-d", f"tcp.port=={port},http"]
    if keylog:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    cmd += list(extra)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"tshark failed: {res.stderr}")
    return json.loads(res.stdout or "[]")


def tshark_fields(path: str, fields: list[str], *, dfilter: Optional[str] = None,
                  extra: Iterable[str] = ()) -> list[list[str]]:
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=\t",
           "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    if dfilter:
        cmd += ["-Y", dfilter]
    cmd += list(extra)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"tshark failed: {res.stderr}")
    return [line.split("\t") for line in res.stdout.splitlines()]


def count_packets(path: str) -> int:
    res = subprocess.run(["tshark", "-n", "-r", path, "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=True)
    return len(res.stdout.split())


# ---------------------------------------------------------------------- JSON helpers
def _as_list(v: Any) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def find(d: Any, key: str) -> Any:
    """First value of `key` anywhere inside d (depth first)."""
    if isinstance(d, dict):
        if key in d:
            return d[key]
        for v in d.values():
            r = find(v, key)
            if r is not None:
                return r
    elif isinstance(d, list):
        for v in d:
            r = find(v, key)
            if r is not None:
                return r
    return None


def _flag(tcp: dict, name: str) -> bool:
    v = find(tcp, f"tcp.flags.{name}")
    return v in ("1", "True", "true", True)


def _endpoint(ip: str, port: str) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


# ---------------------------------------------------------------------- packets
def simplify(raw: list[dict]) -> list[dict]:
    pkts = []
    for p in raw:
        L = p["_source"]["layers"]
        fr = L["frame"]
        tcp = L.get("tcp")
        if tcp is None:
            continue
        if isinstance(tcp, list):  # should not happen (no tunnels here)
            tcp = tcp[0]
        ipl = L.get("ip") or L.get("ipv6")
        if isinstance(ipl, list):
            ipl = ipl[0]
        src_ip = find(ipl, "ip.src") or find(ipl, "ipv6.src")
        dst_ip = find(ipl, "ip.dst") or find(ipl, "ipv6.dst")
        pk = {
            "no": int(fr["frame.number"]),
            "t": Decimal(fr["frame.time_epoch"]),
            "stream": int(tcp["tcp.stream"]),
            "src": _endpoint(src_ip, tcp["tcp.srcport"]),
            "dst": _endpoint(dst_ip, tcp["tcp.dstport"]),
            "syn": _flag(tcp, "syn"), "ack": _flag(tcp, "ack"),
            "fin": _flag(tcp, "fin"), "rst": _flag(tcp, "reset"),
            "http": [], "ws": [], "tls": L.get("tls"),
        }
        for h in _as_list(L.get("http")):
            pk["http"].append(_http(h))
        for w in _as_list(L.get("websocket")):
            pk["ws"].append(_ws(w))
        pkts.append(pk)
    return pkts


def _http(h: dict) -> dict:
    out: dict[str, Any] = {}
    method = find(h, "http.request.method")
    code = find(h, "http.response.code")
    if method is not None:
        out["kind"] = "request"
        out["method"] = method
        out["uri"] = find(h, "http.request.uri")
        out["lines"] = [ln.rstrip("\r\n") for ln in _as_list(find(h, "http.request.line"))]
    elif code is not None:
        out["kind"] = "response"
        out["status"] = int(code)
        out["reason"] = find(h, "http.response.phrase") or ""
        out["lines"] = [ln.rstrip("\r\n") for ln in _as_list(find(h, "http.response.line"))]
        body = find(h, "http.file_data")
        out["body"] = body
    else:
        out["kind"] = "other"
    return out


def _ws(w: dict) -> dict:
    plen = int(find(w, "websocket.payload_length"))
    if plen == 126:
        plen = int(find(w, "websocket.payload_length_ext_16"))
    elif plen == 127:
        plen = int(find(w, "websocket.payload_length_ext_64"))
    code = find(w, "websocket.payload.close.status_code")
    reason = find(w, "websocket.payload.close.reason")
    return {"opcode": int(find(w, "websocket.opcode")), "fin": find(w, "websocket.fin") == "1",
            "mask": find(w, "websocket.mask") == "1",
            "rsv": int(find(w, "websocket.rsv") or "0", 16),
            "len": plen, "close_code": int(code) if code is not None else None,
            "close_reason": reason, "text": find(w, "websocket.payload.text")}


def header(lines: list[str], name: str) -> Optional[str]:
    name = name.lower()
    for ln in lines:
        if ":" in ln:
            k, v = ln.split(":", 1)
            if k.strip().lower() == name:
                return v.strip()
    return None


# ---------------------------------------------------------------------- sessions
def sessions_from_packets(pkts: list[dict], gap_threshold: float = 10.0) -> list[dict]:
    by_stream: dict[int, list[dict]] = {}
    for p in pkts:
        by_stream.setdefault(p["stream"], []).append(p)
    out = []
    for stream in sorted(by_stream):
        out.append(_session(stream, by_stream[stream], gap_threshold))
    return out


def _session(stream: int, pkts: list[dict], threshold: float) -> dict:
    syn = next((p for p in pkts if p["syn"] and not p["ack"]), None)
    if syn is not None:
        client, server = syn["src"], syn["dst"]
    else:
        req = next(p for p in pkts if any(h["kind"] == "request" for h in p["http"]))
        client, server = req["src"], req["dst"]
    S: dict[str, Any] = {"client": client, "server": server, "tcp_stream": stream}

    req_p = resp_p = None
    req = resp = None
    for p in pkts:
        for h in p["http"]:
            if h["kind"] == "request" and req is None and p["src"] == client:
                req_p, req = p, h
            elif h["kind"] == "response" and resp is None and p["src"] == server:
                resp_p, resp = p, h
    hs: dict[str, Any] = {}
    if req:
        url = urlsplit(req["uri"])
        q = {}
        for k, vals in parse_qs(url.query, keep_blank_values=True).items():
            q[k] = vals[0] if len(vals) == 1 else vals
        hs.update({"method": req["method"], "path": url.path, "query": q,
                   "request_frame": req_p["no"]})
    websocket = bool(resp and resp["status"] == 101)
    if resp:
        hs.update({"status": resp["status"], "reason": resp["reason"],
                   "response_frame": resp_p["no"],
                   "dg_request_id": header(resp["lines"], "dg-request-id"),
                   "dg_error": header(resp["lines"], "dg-error")})
        if not websocket:
            hs["body"] = resp["body"]
        else:
            key = header(req["lines"], "sec-websocket-key") if req else None
            accept = header(resp["lines"], "sec-websocket-accept")
            want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode() \
                if key else None
            hs["accept_valid"] = bool(key and accept == want)
            hs["extensions"] = header(resp["lines"], "sec-websocket-extensions")
    S["handshake"] = hs
    S["websocket"] = websocket

    # WebSocket frames in wire order
    frames = []
    for p in pkts:
        for w in p["ws"]:
            frames.append(dict(w, no=p["no"], t=p["t"],
                               dir="client" if p["src"] == client else "server"))
    counts = {}
    for d in ("client", "server"):
        c = {"text": 0, "binary": 0, "empty_binary": 0, "continuation": 0, "ping": 0,
             "pong": 0, "close": 0, "other": 0, "payload_bytes": 0,
             "first_frame": None, "last_frame": None}
        for f in frames:
            if f["dir"] != d:
                continue
            c[OPCODES.get(f["opcode"], "other")] += 1
            if f["opcode"] == 2 and f["len"] == 0:
                c["empty_binary"] += 1
            c["payload_bytes"] += f["len"]
            if c["first_frame"] is None:
                c["first_frame"] = f["no"]
            c["last_frame"] = f["no"]
        counts[d] = c
    S["frames"] = counts

    # close frames and TCP end
    close: dict[str, Any] = {"client": None, "server": None, "initiator": None}
    for f in frames:
        if f["opcode"] == 8 and close[f["dir"]] is None:
            close[f["dir"]] = {"code": f["close_code"], "reason": f["close_reason"] or "",
                               "frame": f["no"]}
            if close["initiator"] is None:
                close["initiator"] = f["dir"]
    end_p = next((p for p in pkts if p["fin"] or p["rst"]), None)
    kinds = {("rst" if p["rst"] else "fin") for p in pkts if p["fin"] or p["rst"]}
    if end_p is None:
        close.update({"tcp_end": "open", "tcp_end_by": None, "tcp_end_frame": None})
    else:
        close.update({"tcp_end": "rst" if end_p["rst"] else "fin",
                      "tcp_end_by": "client" if end_p["src"] == client else "server",
                      "tcp_end_frame": end_p["no"]})
    S["close"] = close
    S["_tcp_end_kinds"] = sorted(kinds)

    # gaps
    S["gaps"] = compute_gaps(websocket, resp_p, frames, close, end_p, pkts, threshold)

    # generic findings
    found = set()
    if resp and resp["status"] != 101:
        found.add("handshake-failed")
    if req and not resp:
        found.add("handshake-unanswered")
    if websocket and not hs.get("accept_valid"):
        found.add("bad-accept")
    for g in S["gaps"]:
        found.add("client-gap" if g["kind"] == "any" else "audio-gap")
    if counts["client"]["empty_binary"]:
        found.add("empty-binary-frame")
    if websocket and close["client"] is None and close["server"] is None \
            and close["tcp_end"] in ("fin", "rst"):
        found.add("abnormal-closure")
    for f in frames:
        if f["dir"] == "client" and not f["mask"]:
            found.add("unmasked-client-frame")
        if f["dir"] == "server" and f["mask"]:
            found.add("masked-server-frame")
        if f["opcode"] >= 8 and (f["len"] > 125 or not f["fin"]):
            found.add("control-frame-too-long")
    S["_findings"] = sorted(found)
    S["_frames"] = frames
    S["_packets"] = pkts
    return S


def compute_gaps(websocket: bool, resp_p: Optional[dict], frames: list[dict], close: dict,
                 end_p: Optional[dict], pkts: list[dict], threshold: float) -> list[dict]:
    """Client silences longer than `threshold` seconds.

    Measured from the 101 response (or the first client frame when there is none) over the
    client's frames (kind "any": every opcode; kind "audio": binary frames), up to the end
    of the measurement window = the first of: the client's close frame, the server's close
    frame, the first TCP FIN/RST packet (else the last packet of the stream).
    `after_frame` started the silence, `before_frame` ended it, `seconds` = time difference.
    """
    if not websocket and not any(f["dir"] == "client" for f in frames):
        return []
    cands = []
    for side in ("client", "server"):
        if close[side] is not None:
            f = next(f for f in frames if f["opcode"] == 8 and f["dir"] == side)
            cands.append((f["no"], f["t"]))
    if end_p is not None:
        cands.append((end_p["no"], end_p["t"]))
    if not cands:
        cands.append((pkts[-1]["no"], pkts[-1]["t"]))
    end_no, end_t = min(cands)
    if resp_p is not None and websocket:
        start = (resp_p["no"], resp_p["t"])
    else:
        first = next(f for f in frames if f["dir"] == "client")
        start = (first["no"], first["t"])
    gaps = []
    for kind in ("any", "audio"):
        events = [start]
        for f in frames:
            if f["dir"] != "client" or f["no"] <= start[0] or f["no"] >= end_no:
                continue
            if kind == "audio" and f["opcode"] != 2:
                continue
            if events[-1][0] != f["no"]:
                events.append((f["no"], f["t"]))
        events.append((end_no, end_t))
        for (a_no, a_t), (b_no, b_t) in zip(events, events[1:]):
            secs = b_t - a_t
            if secs > Decimal(str(threshold)):
                gaps.append({"direction": "client", "kind": kind, "after_frame": a_no,
                             "before_frame": b_no, "seconds": float(round(secs, 6))})
    return gaps


def tls_info(path: str, keylog: Optional[str], port: int) -> list[dict]:
    """Negotiated TLS version and cipher suite per stream (from the ServerHello)."""
    extra = ["-d", f"tcp.port=={port},tls"]
    if keylog:
        extra += ["-o", f"tls.keylog_file:{keylog}"]
    rows = tshark_fields(path, ["tcp.stream", "tls.handshake.version",
                                "tls.handshake.extensions.supported_version",
                                "tls.handshake.ciphersuite"],
                         dfilter="tls.handshake.type == 2", extra=extra)
    out = []
    names = {"0x0304": "TLSv1.3", "0x0303": "TLSv1.2"}
    for stream, legacy, sup, suite in rows:
        ver = sup.split(",")[0] if sup else legacy
        out.append({"tcp_stream": int(stream), "version": names.get(ver, ver),
                    "cipher_suite_id": suite})
    return out
