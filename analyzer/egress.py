"""Did the audio leave, how much, how fast: the egress summary of a session, and its class.

Pure functions over aggregates the pipeline already keeps (byte and record totals, first and
last client data, the session's measured silences, the 1-second activity bins): nothing
here runs per packet.

* `egress_summary()` -- client bytes, the active period (first to last client data, minus
  the silences over the threshold), the rate over it, and what that rate is consistent
  with once TLS and WebSocket framing are taken off.
* `looks_like_streaming_upload()` -- the shape of a stream nobody named: not h2, long-lived,
  steady client-to-server application records.
* `connection_class()` -- websocket | encrypted-stream | other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

WEBSOCKET, ENCRYPTED_STREAM, OTHER = "websocket", "encrypted-stream", "other"

# Raw audio rates in real time (bytes per second) and how people name them.
REALTIME_RATES = (
    (96_000, "48 kHz 16-bit mono (linear16)"),
    (88_200, "44.1 kHz 16-bit mono (linear16)"),
    (64_000, "32 kHz 16-bit mono, or 16 kHz 16-bit stereo (linear16)"),
    (48_000, "24 kHz 16-bit mono (linear16)"),
    (32_000, "16 kHz 16-bit mono (linear16)"),
    (16_000, "8 kHz 16-bit mono (linear16), or 16 kHz mu-law"),
    (8_000, "8 kHz 8-bit mono (mu-law or A-law)"),
)
# How far a measured rate may be from a nominal one: clients pace chunks with timers, and
# the active period starts and ends on whole chunks.
RATE_TOLERANCE = 0.06
# Below this a stream carries far less than the smallest raw rate: a compressed codec.
COMPRESSED_BELOW = 8_000 * (1 - RATE_TOLERANCE)
COMPRESSED = "a compressed codec (Opus, MP3, FLAC...), or raw audio sent slower than real time"
FASTER = "more than 48 kHz 16-bit mono, or audio sent faster than real time"

# Bytes a TLS application record adds to what it carries: 1.3 adds the inner content type
# and a 16-byte AEAD tag; 1.2 (AES-GCM, ChaCha20) an 8-byte explicit nonce (GCM) and the tag.
TLS_RECORD_OVERHEAD = {"TLS 1.3": 17, "TLS 1.2": 24}
DEFAULT_TLS_RECORD_OVERHEAD = 17

# The streaming-upload shape.
STREAM_MIN_ACTIVE_SECONDS = 5.0
STREAM_MIN_BUSY_FRACTION = 0.7  # of the active seconds, with client records in them
STREAM_MIN_RECORDS_PER_SECOND = 1.0


@dataclass
class Egress:
    client_bytes: int  # WebSocket payload bytes, TLS application-record bytes, or TCP bytes
    units: int  # frames, records or segments
    unit: str  # "frames" | "records" | "segments"
    first_frame: Optional[int]
    first_time: Optional[float]
    last_frame: Optional[int]
    last_time: Optional[float]
    active_seconds: float
    active_bytes_per_second: Optional[float]
    payload_bytes_per_second: Optional[float]  # after the framing overhead estimate
    consistent_with: Optional[str]
    silences: list[dict] = field(default_factory=list)  # over the threshold, excluded
    # Encrypted streams: the server's last few application records ({length, frame, time}),
    # what the timing rules (findings/encrypted_rules.py) read.
    server_last_records: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"client_bytes": self.client_bytes, "active_seconds": round(self.active_seconds, 3),
                "active_bytes_per_second": (round(self.active_bytes_per_second, 1)
                                            if self.active_bytes_per_second is not None else None),
                "consistent_with": self.consistent_with, "units": self.units, "unit": self.unit,
                "payload_bytes_per_second": (round(self.payload_bytes_per_second, 1)
                                             if self.payload_bytes_per_second is not None else None),
                "first_frame": self.first_frame, "last_frame": self.last_frame,
                "silences": self.silences, "server_last_records": self.server_last_records}


def ws_frame_overhead(mean_payload: float) -> int:
    """Header bytes of a masked client frame carrying `mean_payload` bytes (RFC 6455 5.2)."""
    if mean_payload < 126:
        return 6
    if mean_payload < 65536:
        return 8
    return 14


def consistent_with(payload_rate: Optional[float]) -> Optional[str]:
    """What a measured payload rate (bytes/s over the active period) matches, or None."""
    if payload_rate is None or payload_rate <= 0:
        return None
    for nominal, label in REALTIME_RATES:
        if abs(payload_rate - nominal) <= RATE_TOLERANCE * nominal:
            return label + " in real time"
    if payload_rate < COMPRESSED_BELOW:
        return COMPRESSED
    if payload_rate > REALTIME_RATES[0][0] * (1 + RATE_TOLERANCE):
        return FASTER
    return None


def egress_summary(client_bytes: int, units: int, unit: str, first: Optional[tuple],
                   last: Optional[tuple], gaps, unit_overhead: float = 0.0) -> Egress:
    """The egress of one session.

    `first`/`last` are (frame, time) of the first and last client data; `gaps` the
    session's client silences over the threshold (model.Gap, kind "any"): those inside the
    active period are excluded from it and listed.  `unit_overhead` is the estimated bytes
    of framing per unit (TLS record and WebSocket frame headers) taken off before matching
    a rate."""
    silences = []
    active = 0.0
    if first is not None and last is not None:
        start, end = first[1], last[1]
        active = end - start
        for g in gaps:
            if g.kind != "any":
                continue
            lo, hi = max(g.start, start), min(g.end, end)
            if hi > lo:
                active -= hi - lo
                silences.append({"seconds": round(hi - lo, 3), "after_frame": g.after_frame,
                                 "before_frame": g.before_frame, "start": lo, "end": hi})
    rate = client_bytes / active if active > 0 else None
    payload_rate = None
    if rate is not None:
        # n units span n - 1 intervals: take one unit's share off before matching a rate,
        # or a short stream reads as faster than it was.
        payload = max(0.0, client_bytes - units * unit_overhead)
        payload_rate = payload * (units - 1) / units / active if units > 1 else payload / active
    return Egress(client_bytes, units, unit, first[0] if first else None, first[1] if first else None,
                  last[0] if last else None, last[1] if last else None, max(active, 0.0), rate,
                  payload_rate, consistent_with(payload_rate), silences)


def busy_seconds(timeline, direction: int, start: float, end: float) -> float:
    """Seconds (in the timeline's bins) between `start` and `end` with bytes sent in
    `direction` (0 client, 1 server)."""
    if timeline is None or timeline.origin is None:
        return 0.0
    width = timeline.width
    lo = int((start - timeline.origin) / width)
    hi = int((end - timeline.origin) / width)
    column = 2 + direction
    return sum(width for i, b in timeline.bins.items() if lo <= i <= hi and b[column])


def looks_like_streaming_upload(alpn: Optional[str], egress: Egress, server_bytes: int,
                                busy: float) -> bool:
    """The shape of an audio stream seen without keys or a name: not HTTP/2 by ALPN (h2
    multiplexes fetches), long-lived (STREAM_MIN_ACTIVE_SECONDS of client activity), steady
    (client records in at least STREAM_MIN_BUSY_FRACTION of the active seconds, at least
    STREAM_MIN_RECORDS_PER_SECOND on average) and an upload (the client sends more than it
    receives).  An idle keep-alive, a download, a chat and an h2 page all fail it."""
    if alpn == "h2":
        return False
    active = egress.active_seconds
    if active < STREAM_MIN_ACTIVE_SECONDS:
        return False
    if egress.units < STREAM_MIN_RECORDS_PER_SECOND * active:
        return False
    if busy < STREAM_MIN_BUSY_FRACTION * active:
        return False
    return egress.client_bytes > server_bytes


def connection_class(websocket_seen: bool, encrypted: bool, named_stream_host: bool,
                     streaming_shape: bool, keys_failed: bool = False) -> str:
    """websocket: an upgrade or a frame stream was seen (plain or decrypted);
    encrypted-stream: TLS without keys kept for its server name (a Deepgram or
    --server-name host), its streaming-upload shape, or because keys were given for it and
    failed (the user meant to read it: the failure is a finding); other: everything else."""
    if websocket_seen:
        return WEBSOCKET
    if encrypted and (named_stream_host or streaming_shape or keys_failed):
        return ENCRYPTED_STREAM
    return OTHER


def human_bytes(n: float) -> str:
    """1492152 -> '1.49 MB' (decimal units, as network tools count)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}" if n < 10 * size else f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def human_rate(bytes_per_second: float) -> str:
    """32000 -> '32.0 kB/s': every rate a report or the dashboard prints, in one format."""
    return f"{human_bytes(bytes_per_second)}/s"
