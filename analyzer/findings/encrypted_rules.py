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


def _keyless_deepgram(s: Session) -> bool:
    return (s.connection_class == "encrypted-stream" and s.transport == "tls"
            and s.server_name is not None and s.server_name.deepgram and s.egress is not None
            and s.egress.last_frame is not None)


def _server_records_after(s: Session, ts: float) -> list[dict]:
    tail = (s.tls.activity.get("server") or {}).get("last_records") or [] if s.tls else []
    return [r for r in tail if r["time"] > ts]


@rule
def encrypted_net0001(s: Session, ctx: RuleContext):
    """Client silent >= 10 s, then a short server record, then the server's FIN."""
    if not _keyless_deepgram(s):
        return
    end = s.close
    if end.tcp_end_by != "server" or end.tcp_end != "fin":
        return
    e = s.egress
    after = _server_records_after(s, e.last_time)
    if not after:
        return
    close_record = after[-1]
    silence = close_record["time"] - e.last_time
    if silence < NET0001_SECONDS - NET0001_TOLERANCE or close_record["length"] > SHORT_RECORD_BYTES:
        return
    if end.tcp_end_time is None or end.tcp_end_time < close_record["time"]:
        return
    frames = [e.last_frame, close_record["frame"], end.tcp_end_frame]
    yield Finding(
        "encrypted-net0001", ERROR,
        f"Consistent with Deepgram's NET-0001 timeout (no audio or text message for 10 s): the "
        f"client's last record was No. {e.last_frame} at {clock(e.last_time)}; {silence:.1f} s later "
        f"the server sent a short record ({close_record['length']} bytes, No. {close_record['frame']}: "
        f"the size of a close frame) and ended the connection (FIN No. {end.tcp_end_frame}). Keep "
        f"sending audio, or send KeepAlive every few seconds during pauses. "
        + KEYS_ADD.format(what="the close code and reason, and whether the client's last records "
                          "were audio or KeepAlive"),
        frames, e.last_time,
        {"client_last_frame": e.last_frame, "server_record_frame": close_record["frame"],
         "server_record_bytes": close_record["length"], "silence_seconds": round(silence, 3),
         "server_fin_frame": end.tcp_end_frame})


@rule
def encrypted_client_closed(s: Session, ctx: RuleContext):
    """The client stopped sending and ended the connection first."""
    if not _keyless_deepgram(s) or s.close.tcp_end_by != "client":
        return
    e, end = s.egress, s.close
    kind = "FIN" if end.tcp_end == "fin" else "RST"
    after = _server_records_after(s, e.last_time)
    answered = (f"; the server sent {len(after)} record(s) after the client's last one"
                if after else "; the server sent nothing after the client's last record")
    yield Finding(
        "encrypted-client-closed", INFO,
        f"The client stopped sending at No. {e.last_frame} ({clock(e.last_time)}) and ended the "
        f"connection first ({kind} No. {end.tcp_end_frame} at {clock(end.tcp_end_time)}){answered}: "
        f"consistent with the client finishing its stream. "
        + KEYS_ADD.format(what="whether it sent CloseStream and received the final results and "
                          "Metadata before closing"),
        [e.last_frame, end.tcp_end_frame], end.tcp_end_time,
        {"client_last_frame": e.last_frame, "tcp_end": end.tcp_end, "tcp_end_frame": end.tcp_end_frame,
         "server_records_after": len(after)})


@rule
def encrypted_server_closed(s: Session, ctx: RuleContext):
    """The server ended the connection while the client was still sending."""
    if not _keyless_deepgram(s) or s.close.tcp_end_by != "server":
        return
    e, end = s.egress, s.close
    if end.tcp_end_time is None or e.last_time < end.tcp_end_time - STILL_SENDING_SECONDS:
        return
    kind = "FIN" if end.tcp_end == "fin" else "RST"
    yield Finding(
        "encrypted-server-closed", ERROR,
        f"The server ended the connection ({kind} No. {end.tcp_end_frame} at {clock(end.tcp_end_time)}) "
        f"while the client was still sending (its last record No. {e.last_frame} at "
        f"{clock(e.last_time)}): consistent with a server-side close such as DATA-0000 (audio it "
        f"could not decode) or NET-0000 (an internal error); only the keys can tell them apart. "
        + KEYS_ADD.format(what="the close code and reason"),
        [end.tcp_end_frame, e.last_frame], end.tcp_end_time,
        {"client_last_frame": e.last_frame, "tcp_end": end.tcp_end, "tcp_end_frame": end.tcp_end_frame})
