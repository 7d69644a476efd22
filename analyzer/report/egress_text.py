"""The egress sentences every format shows: a session's first line, the capture's headline
about Deepgram streams, the summary of other connections and their full list (--all).

Plain strings (escaping is the renderer's job), read from the typed model only.
"""
from __future__ import annotations

from typing import Optional

from ..egress import human_bytes, human_rate
from ..model import CaptureReport, Session
from .text import clock

OTHER_COLUMNS = ("tcp.stream", "client → server", "server name", "protocol", "client bytes",
                 "server bytes", "frames", "start", "end")


def _rate(rate: Optional[float]) -> str:
    return human_rate(rate) if rate is not None else "no rate"


def _compressed(s: Session) -> str:
    """Egress counts bytes on the wire: under permessage-deflate they are not the audio's
    size (the Stream section's inflated bytes), so the rate says so."""
    return " compressed on the wire" if s.handshake.deflate is not None and s.websocket else ""


def _server(s: Session) -> str:
    sn = s.server_name
    return f"{sn.name} {s.server}" if sn is not None else s.server


def egress_line(s: Session) -> Optional[str]:
    """'Audio left the network: 1.49 MB in 468 records over 46.2 s (32.3 kB/s, consistent
    with 16 kHz 16-bit mono (linear16) in real time) to api.deepgram.com 172.31.10.20:443
    (SNI in No. 229, DNS answer No. 171)'."""
    e = s.egress
    if e is None:
        return None
    evidence = f" ({s.server_name.evidence()})" if s.server_name is not None else ""
    if not e.client_bytes:
        return f"No client data left the network to {_server(s)}{evidence}."
    head = "Audio left the network" if e.consistent_with and "real time" in e.consistent_with \
        else "Client data left the network"
    what = f", consistent with {e.consistent_with}" if e.consistent_with else ""
    silences = ""
    if e.silences:
        total = sum(x["seconds"] for x in e.silences)
        silences = f"; {len(e.silences)} silence(s) over the threshold ({total:.1f} s) excluded"
    return (f"{head}: {human_bytes(e.client_bytes)} in {e.units} {e.unit} over {e.active_seconds:.1f} s "
            f"({_rate(e.active_bytes_per_second)}{_compressed(s)}{what}) to {_server(s)}{evidence}{silences}.")


def deepgram_headline(cap: CaptureReport) -> list[str]:
    """One line per session to a Deepgram host: the answer to "did the audio leave, to
    Deepgram, how much", first thing in the report."""
    lines = []
    for s in cap.sessions:
        sn, e = s.server_name, s.egress
        if sn is None or not sn.deepgram or e is None:
            continue
        end = ""
        if e.last_time is not None:
            end = f", last client data No. {e.last_frame} at {clock(e.last_time)}"
        lines.append(f"Session {s.index} to Deepgram ({sn.name}, {s.server}): {e.client_bytes:,} client "
                     f"bytes ({human_bytes(e.client_bytes)}) over {e.active_seconds:.1f} s active at "
                     f"{_rate(e.active_bytes_per_second)}{_compressed(s)}{end}.")
    return lines


def connections_line(cap: CaptureReport) -> Optional[str]:
    """'46 TCP connections: 2 sessions, 44 other (34 www.example.net, ...; 1.20 MB)'."""
    c = cap.connections
    if c is None:
        return None
    other = c.other
    text = f"{c.total} TCP connection(s): {c.sessions} session(s), {other.count} other"
    if other.count:
        names = sorted(other.by_server_name.items(), key=lambda kv: (-kv[1]["count"], kv[0]))
        listed = ", ".join(f"{n} {name}" for name, n in ((k, v["count"]) for k, v in names[:6]))
        more = f", +{len(names) - 6} more names" if len(names) > 6 else ""
        text += f" ({listed}{more}; {human_bytes(other.bytes)})"
    if c.copies:
        text += f"; {c.copies} connection(s) seen twice counted once"
    return text + (". --all lists them." if other.count and not c.listed else ".")


def other_rows(cap: CaptureReport) -> list[list[str]]:
    c = cap.connections
    if c is None or not c.listed:
        return []
    return [[str(o.tcp_stream), f"{o.client} → {o.server}", o.server_name or "-", o.protocol,
             f"{o.client_bytes:,}", f"{o.server_bytes:,}",
             f"No. {o.first_frame}-{o.last_frame}" if o.first_frame is not None else "-",
             clock(o.start_time), clock(o.end_time)] for o in c.listed]


def copy_line(s: Session) -> Optional[str]:
    k = s.copy
    if k is None:
        return None
    return (f"Also captured as {k.client} → {k.server} (tcp.stream {k.tcp_stream}, No. {k.first_frame}-"
            f"{k.last_frame}): the same connection seen twice (NAT or two capture points), counted once.")
