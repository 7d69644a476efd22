"""What an encrypted stream to Deepgram proves without keys: rules over record timing.

Without the TLS keys no close code can be read, but the order and size of the records and
who ended TCP are on the wire.  Each rule below says what the timing is consistent with and
what the keys would add.  They apply to `encrypted-stream` sessions whose server name is a
Deepgram host (or a --server-name pattern): the decrypted case has its own rules
(deepgram_rules.py), which read the close frames themselves.
"""
from __future__ import annotations

from ..model import ERROR, INFO, Finding, Session
from .registry import RuleContext, rule
from .rules import clock

# Deepgram closes a stream with NET-0001 when it got no audio or text message for 10 s.
NET0001_SECONDS = 10.0
# Capture timestamps of the last client record and of the server's close differ from the
# server's own timer by the network delay and scheduling; allow this much below 10 s.
NET0001_TOLERANCE = 0.2
# A WebSocket close frame with Deepgram's reason, sealed in one TLS record, fits in this.
SHORT_RECORD_BYTES = 300
# The client counts as "still sending" when its last record is this close to the server's end.
STILL_SENDING_SECONDS = 1.0

KEYS_ADD = ("With the TLS keys (run the client with SSLKEYLOGFILE=keys.log and pass --keylog "
            "keys.log) dgcap would read {what}.")


# The connection ends (either side's FIN or RST) this soon after the server's close record.
END_AFTER_CLOSE_SECONDS = 5.0


def _keyless_deepgram(s: Session) -> bool:
    return (s.connection_class == "encrypted-stream" and s.transport == "tls"
            and s.server_name is not None and s.server_name.deepgram and s.egress is not None
            and s.egress.last_frame is not None)


def _ended_first_by(s: Session, side: str):
    """The TCP end event when `side` ended this keyless Deepgram stream first and the timing
    is not NET-0001's (that rule speaks for it); else None."""
    if not _keyless_deepgram(s) or not s.close.tcp_ends or s.close.tcp_ends[0].by != side \
            or _net0001(s) is not None:
        return None
    return s.close.tcp_ends[0]


def _first_end(s: Session, by: str = None, kind: str = None):
    """The first TCP end event (FIN or RST) matching `by`/`kind`: (kind, by, frame, time)."""
    for end in s.close.tcp_ends:
        if (by is None or end.by == by) and (kind is None or end.kind == kind):
            return end
    return None


def _net0001(s: Session):
    """(silence, server close record, server FIN) when the timing reads as NET-0001: a client
    silence of 10 s, a short server record at its end, and the server's FIN soon after."""
    for g in s.gaps:
        if g.kind != "any" or g.seconds < NET0001_SECONDS - NET0001_TOLERANCE:
            continue
        for r in s.egress.server_last_records:
            if (g.start + NET0001_SECONDS - NET0001_TOLERANCE <= r["time"] <= g.end
                    and r["length"] <= SHORT_RECORD_BYTES):
                fin = _first_end(s, "server", "fin")
                if fin is not None and r["time"] <= fin.time <= r["time"] + END_AFTER_CLOSE_SECONDS:
                    return g, r, fin
    return None


@rule
def encrypted_net0001(s: Session, ctx: RuleContext):
    """Client silent >= 10 s, then a short server record, then the server's FIN."""
    if not _keyless_deepgram(s):
        return
    found = _net0001(s)
    if found is None:
        return
    g, record, fin = found
    silence = record["time"] - g.start
    yield Finding(
        "encrypted-net0001", ERROR,
        f"Consistent with Deepgram's NET-0001 timeout (no audio or text message for 10 s): the "
        f"client's last record before the silence was No. {g.after_frame} at {clock(g.start)}; "
        f"{silence:.1f} s later the server sent a short record ({record['length']} bytes, No. "
        f"{record['frame']}: the size of a close frame) and ended the connection (FIN No. {fin.frame}). "
        f"Keep sending audio, or send KeepAlive every few seconds during pauses. "
        + KEYS_ADD.format(what="the close code and reason, and whether the client's last records "
                          "were audio or KeepAlive"),
        [g.after_frame, record["frame"], fin.frame], g.start,
        {"client_last_frame": g.after_frame, "server_record_frame": record["frame"],
         "server_record_bytes": record["length"], "silence_seconds": round(silence, 3),
         "server_fin_frame": fin.frame})


@rule
def encrypted_client_closed(s: Session, ctx: RuleContext):
    """The client stopped sending and ended the connection first."""
    end = _ended_first_by(s, "client")
    if end is None:
        return
    e = s.egress
    after = [r for r in s.egress.server_last_records if r["time"] > e.last_time]
    answered = (f"; the server sent {len(after)} record(s) after the client's last one"
                if after else "; the server sent nothing after the client's last record")
    yield Finding(
        "encrypted-client-closed", INFO,
        f"The client stopped sending at No. {e.last_frame} ({clock(e.last_time)}) and ended the "
        f"connection first ({end.kind.upper()} No. {end.frame} at {clock(end.time)}){answered}: "
        f"consistent with the client finishing its stream. "
        + KEYS_ADD.format(what="whether it sent CloseStream and received the final results and "
                          "Metadata before closing"),
        [e.last_frame, end.frame], end.time,
        {"client_last_frame": e.last_frame, "tcp_end": end.kind, "tcp_end_frame": end.frame,
         "server_records_after": len(after)})


@rule
def encrypted_server_closed(s: Session, ctx: RuleContext):
    """The server ended the connection while the client was still sending."""
    end = _ended_first_by(s, "server")
    if end is None or s.egress.last_time < end.time - STILL_SENDING_SECONDS:
        return
    e = s.egress
    yield Finding(
        "encrypted-server-closed", ERROR,
        f"The server ended the connection ({end.kind.upper()} No. {end.frame} at {clock(end.time)}) "
        f"while the client was still sending (its last record No. {e.last_frame} at "
        f"{clock(e.last_time)}): consistent with a server-side close such as DATA-0000 (audio it "
        f"could not decode) or NET-0000 (an internal error); only the keys can tell them apart. "
        + KEYS_ADD.format(what="the close code and reason"),
        [end.frame, e.last_frame], end.time,
        {"client_last_frame": e.last_frame, "tcp_end": end.kind, "tcp_end_frame": end.frame})
