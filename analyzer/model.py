"""The session model: the one contract between analysis and rendering.

Analysis layers fill these plain dataclasses; finding rules read them and
append findings; renderers only read them.  Nothing here parses or prints.
`to_json()` gives the documented JSON contract (`schema: dgcap.report/1`,
see docs/json-contract.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from .servername import ServerName

if TYPE_CHECKING:  # Deepgram-layer value objects held by DeepgramSummary / AudioSummary
    from .deepgram.audio import WavInfo
    from .deepgram.closeexplain import CloseExplanation
    from .deepgram.params import HandshakeCause, ParamProblem

from .connections import ConnectionCopy, Connections
from .egress import Egress
from .servername import ServerName

SCHEMA = "dgcap.report/1"

CLIENT = 0  # direction index: client -> server
SERVER = 1  # direction index: server -> client
DIRECTION_NAMES = ("client", "server")

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass
class Finding:
    id: str
    severity: str  # error | warning | info
    message: str
    frames: list[int] = field(default_factory=list)
    time: Optional[float] = None
    # Machine-readable evidence (numbers a test or another tool can check).
    details: dict[str, Any] = field(default_factory=dict)
    # Wireshark display filter isolating the evidence (same tcp.stream numbering as Wireshark).
    display_filter: Optional[str] = None

    def to_json(self) -> dict:
        out = {"id": self.id, "severity": self.severity, "message": self.message,
               "frames": list(self.frames), "time": self.time}
        if self.display_filter:
            out["display_filter"] = self.display_filter
        if self.details:
            out["details"] = self.details
        return out


@dataclass
class Anomaly:
    """Something a protocol layer noticed (Zeek's "weird"): raw evidence, no verdict.

    Finding rules decide which anomalies become findings and how they read.
    """
    kind: str  # e.g. "unmasked-client-frame", "tcp-hole", "invalid-utf8"
    frame: Optional[int]
    time: Optional[float]
    direction: Optional[int] = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class AnomalyTally:
    """Anomalies of one kind past the per-session record cap: still counted, first and last kept."""
    kind: str
    count: int
    first_frame: Optional[int]
    first_time: Optional[float]
    last_frame: Optional[int]
    last_time: Optional[float]
    directions: int = 0  # bit 1 << CLIENT, 1 << SERVER
    bytes: int = 0  # sum of the records' "bytes" detail (tcp-hole sizes)


@dataclass
class Handshake:
    method: Optional[str] = None
    path: Optional[str] = None  # request target without the query string
    target: Optional[str] = None  # the full request target as sent
    query: dict[str, Any] = field(default_factory=dict)  # name -> str, or list when repeated
    request_frame: Optional[int] = None
    request_time: Optional[float] = None
    request_headers: list[list[str]] = field(default_factory=list)
    status: Optional[int] = None
    reason: Optional[str] = None
    response_frame: Optional[int] = None
    response_time: Optional[float] = None
    response_headers: list[list[str]] = field(default_factory=list)
    body: Optional[str] = None
    body_json: Optional[dict] = None
    dg_request_id: Optional[str] = None
    dg_error: Optional[str] = None
    ws_key: Optional[str] = None
    ws_accept: Optional[str] = None
    accept_valid: Optional[bool] = None
    subprotocol: Optional[str] = None
    extensions: Optional[str] = None  # Sec-WebSocket-Extensions as agreed by the server
    deflate: Optional[dict[str, Any]] = None  # negotiated permessage-deflate parameters

    def request_header(self, name: str) -> Optional[str]:
        return _header(self.request_headers, name)

    def response_header(self, name: str) -> Optional[str]:
        return _header(self.response_headers, name)

    def to_json(self) -> dict:
        return {
            "status": self.status, "reason": self.reason, "method": self.method,
            "path": self.path, "query": self.query,
            "request_frame": self.request_frame, "response_frame": self.response_frame,
            "request_time": self.request_time, "response_time": self.response_time,
            "dg_request_id": self.dg_request_id, "dg_error": self.dg_error,
            "request_headers": [list(h) for h in self.request_headers],
            "response_headers": [list(h) for h in self.response_headers],
            "body": self.body, "accept_valid": self.accept_valid,
            "subprotocol": self.subprotocol, "extensions": self.extensions,
            "deflate": self.deflate,
        }


def _header(headers: list[list[str]], name: str) -> Optional[str]:
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


@dataclass
class FrameCounts:
    text: int = 0
    binary: int = 0
    empty_binary: int = 0
    continuation: int = 0
    ping: int = 0
    pong: int = 0
    close: int = 0
    other: int = 0  # reserved opcodes
    payload_bytes: int = 0
    first_frame: Optional[int] = None
    first_time: Optional[float] = None
    last_frame: Optional[int] = None
    last_time: Optional[float] = None

    @property
    def total(self) -> int:
        return (self.text + self.binary + self.continuation + self.ping + self.pong
                + self.close + self.other)

    def to_json(self) -> dict:
        return {"text": self.text, "binary": self.binary, "empty_binary": self.empty_binary,
                "continuation": self.continuation, "ping": self.ping, "pong": self.pong,
                "close": self.close, "other": self.other, "payload_bytes": self.payload_bytes,
                "first_frame": self.first_frame, "last_frame": self.last_frame}



def gap_end(s: "Session", g: "Gap") -> str:
    """What ended a silence, named by frame and side the same way everywhere (finding text,
    the gaps table, the HTML timeline): "the server's close frame (No. 30)"."""
    c = s.close
    ref = f" (No. {g.before_frame})" if g.before_frame is not None else ""
    if g.before_frame is not None and c.server is not None and g.before_frame == c.server.frame:
        return f"the server's close frame{ref}"
    if g.before_frame is not None and c.client is not None and g.before_frame == c.client.frame:
        return f"the client's close frame{ref}"
    if g.ended_by == "frame":
        return f"the client's next frame{ref}"
    if g.ended_by == "tcp-end":
        end = (c.tcp_end or "").upper()
        by = f" from the {c.tcp_end_by}" if c.tcp_end_by else ""
        return f"the TCP {end}{by}{ref}" if end in ("FIN", "RST") else f"the TCP end{ref}"
    if g.ended_by == "capture-end":
        return "the end of the capture"
    return f"a close frame{ref}"

@dataclass
class Gap:
    direction: str  # "client" (only client gaps are measured today)
    kind: str  # "any" or "audio"
    start: float
    end: float
    seconds: float
    after_frame: Optional[int]  # the last frame before the silence (101 response or a client frame)
    before_frame: Optional[int]  # the frame that ended it (client frame, close, TCP end)
    ended_by: str = "frame"  # frame | close | tcp-end | capture-end

    def to_json(self) -> dict:
        return {"direction": self.direction, "kind": self.kind, "start": self.start,
                "end": self.end, "seconds": round(self.seconds, 6),
                "after_frame": self.after_frame, "before_frame": self.before_frame,
                "ended_by": self.ended_by}


@dataclass
class CloseFrame:
    code: Optional[int]  # None for an empty close payload
    reason: str
    frame: int
    time: float

    def to_json(self) -> dict:
        return {"code": self.code, "reason": self.reason, "frame": self.frame, "time": self.time}


@dataclass
class TcpEndEvent:
    """A FIN (the first of each side) or the RST, as the TCP layer saw it."""
    kind: str  # fin | rst
    by: str  # client | server
    frame: int
    time: float

    def to_json(self) -> dict:
        return {"kind": self.kind, "by": self.by, "frame": self.frame, "time": self.time}


@dataclass
class Close:
    client: Optional[CloseFrame] = None
    server: Optional[CloseFrame] = None
    initiator: Optional[str] = None  # client | server | None
    # What ended the connection first (a FIN or a RST), who sent it and where.
    tcp_end: str = "open"  # fin | rst | open
    tcp_end_by: Optional[str] = None  # client | server
    tcp_end_frame: Optional[int] = None
    tcp_end_time: Optional[float] = None
    # Every end event in order (each side's first FIN, the RST): at most three.
    tcp_ends: list[TcpEndEvent] = field(default_factory=list)

    @property
    def later_rst(self) -> Optional[TcpEndEvent]:
        """A RST that came after the first end (a FIN): worth saying, it is not what ended it."""
        if self.tcp_end != "fin":
            return None
        return next((e for e in self.tcp_ends if e.kind == "rst"), None)

    def to_json(self) -> dict:
        later = self.later_rst
        return {"client": self.client.to_json() if self.client else None,
                "server": self.server.to_json() if self.server else None,
                "initiator": self.initiator, "tcp_end": self.tcp_end,
                "tcp_end_by": self.tcp_end_by, "tcp_end_frame": self.tcp_end_frame,
                "tcp_end_time": self.tcp_end_time,
                "tcp_ends": [e.to_json() for e in self.tcp_ends],
                "later_rst": later.to_json() if later is not None else None}


@dataclass
class EmptyBinary:
    frame: int
    time: float


@dataclass
class Message:
    """A complete text (or close) message kept for later layers; binary is summarised."""
    direction: int
    opcode: int
    text: Optional[str]
    frame: int  # frame number of the last fragment
    time: float
    size: int
    compressed: bool = False


# --- what later layers add to a session (TLS, Deepgram) ---------------------------

def _opt(value: Any) -> Any:
    """A nested model object as JSON, or None."""
    return None if value is None else value.to_json()


@dataclass
class FrameRef:
    """Where something was seen: a frame number and its capture time."""
    frame: int
    time: float

    def to_json(self) -> dict:
        return {"frame": self.frame, "time": self.time}


@dataclass
class TypedFrameRef:
    """A message of a given type at a frame (e.g. the stream's end, the last server text)."""
    type: str
    frame: int
    time: float

    def to_json(self) -> dict:
        return {"type": self.type, "frame": self.frame, "time": self.time}


@dataclass
class Occurrences:
    """How often something happened, first and last, the first few frames (and details)."""
    KEEP: ClassVar[int] = 20

    count: int = 0
    first_frame: Optional[int] = None
    first_time: Optional[float] = None
    last_frame: Optional[int] = None
    last_time: Optional[float] = None
    frames: list[int] = field(default_factory=list)
    # Per-event details of the first KEEP events: {"frame", "time", **what the layer gave}.
    items: list[dict[str, Any]] = field(default_factory=list)
    bytes: int = 0

    def add(self, frame: int, time: float, size: int = 0, **item: Any) -> None:
        self.count += 1
        self.bytes += size
        if self.first_frame is None:
            self.first_frame, self.first_time = frame, time
        self.last_frame, self.last_time = frame, time
        if len(self.frames) < self.KEEP:
            self.frames.append(frame)
            if item:
                self.items.append({"frame": frame, "time": time, **item})

    def to_json(self) -> dict:
        out = {"count": self.count, "first_frame": self.first_frame, "first_time": self.first_time,
               "last_frame": self.last_frame, "last_time": self.last_time, "frames": self.frames}
        if self.bytes:
            out["bytes"] = self.bytes
        if self.items:
            out["items"] = self.items
        return out


@dataclass
class SizeStats:
    min: float
    median: float
    max: float

    def to_json(self) -> dict:
        return {"min": self.min, "median": self.median, "max": self.max}


@dataclass
class AudioWindow:
    """One pacing window of the client's audio (10 s, the last one partial)."""
    start: float  # seconds after the first chunk
    seconds: float  # the window's wall-clock span
    audio_seconds: float
    chunks: int
    realtime_factor: Optional[float]

    def to_json(self) -> dict:
        return {"start": self.start, "seconds": self.seconds, "audio_seconds": self.audio_seconds,
                "chunks": self.chunks, "realtime_factor": self.realtime_factor}


@dataclass
class AudioPace:
    """Totals and pace of the client's audio chunks (deepgram/audio.py AudioMeter)."""
    bytes: int = 0
    chunks: int = 0
    seconds: Optional[float] = None  # None when the format gives no byte rate
    realtime_factor: Optional[float] = None
    bytes_per_second: Optional[float] = None  # payload (inflated) over the wall time (AudioMeter)
    chunk_ms: Optional[SizeStats] = None
    chunk_bytes: Optional[SizeStats] = None
    first_frame: Optional[int] = None
    first_time: Optional[float] = None
    last_frame: Optional[int] = None
    last_time: Optional[float] = None
    windows: list[AudioWindow] = field(default_factory=list)
    windows_dropped: int = 0
    full_windows: int = 0
    full_windows_below_realtime: int = 0
    max_window_rtf: Optional[float] = None
    min_window_rtf: Optional[float] = None

    def to_json(self) -> dict:
        return {
            "bytes": self.bytes, "chunks": self.chunks, "seconds": self.seconds,
            "realtime_factor": self.realtime_factor, "bytes_per_second": self.bytes_per_second,
            "chunk_ms": _opt(self.chunk_ms),
            "chunk_bytes": _opt(self.chunk_bytes),
            "first_frame": self.first_frame, "first_time": self.first_time,
            "last_frame": self.last_frame, "last_time": self.last_time,
            "windows": [w.to_json() for w in self.windows], "windows_dropped": self.windows_dropped,
            "full_windows": self.full_windows,
            "full_windows_below_realtime": self.full_windows_below_realtime,
            "max_window_rtf": self.max_window_rtf, "min_window_rtf": self.min_window_rtf,
        }


@dataclass
class FirstPayload:
    """The client's first audio message: where, how big, its first 16 bytes in hex."""
    frame: int
    time: float
    size: int
    head: str

    def to_json(self) -> dict:
        return {"frame": self.frame, "time": self.time, "size": self.size, "head": self.head}


@dataclass
class ServerAudio:
    """Binary (audio) messages from the server (text-to-speech, agent)."""
    frames: int = 0
    bytes: int = 0
    first_frame: Optional[int] = None
    first_time: Optional[float] = None

    def to_json(self) -> dict:
        return {"frames": self.frames, "bytes": self.bytes, "first_frame": self.first_frame,
                "first_time": self.first_time}


@dataclass
class AudioSummary:
    """The client's audio as Deepgram gets it: declared/sniffed format, pace; server audio."""
    format: Optional[str] = None  # sniffed container/codec family, None for headerless audio
    codec: Optional[str] = None
    container: Optional[bool] = None
    encoding: Optional[str] = None  # from the query, the agent's Settings or a WAV header
    encoding_source: Optional[str] = None  # query | settings | wav-header
    sample_rate: Optional[int] = None
    channels: Optional[int] = None
    sample_width: Optional[int] = None
    wav: Optional[WavInfo] = None
    first_payload: Optional[FirstPayload] = None
    pace: AudioPace = field(default_factory=AudioPace)
    server: ServerAudio = field(default_factory=ServerAudio)

    def to_json(self) -> dict:
        out = {"format": self.format, "codec": self.codec, "container": self.container,
               "encoding": self.encoding, "encoding_source": self.encoding_source,
               "sample_rate": self.sample_rate, "channels": self.channels,
               "sample_width": self.sample_width, "wav": _opt(self.wav),
               "first_payload": _opt(self.first_payload)}
        out.update(self.pace.to_json())
        out["server"] = self.server.to_json()
        return out


@dataclass
class Latency:
    """Streaming latency (deepgram/latency.py) and the stream's other delays, in seconds."""
    p50: Optional[float] = None
    p95: Optional[float] = None
    max: Optional[float] = None
    samples: int = 0
    closestream_to_metadata: Optional[float] = None
    speak_to_first_audio: Optional[float] = None

    def to_json(self) -> dict:
        return {"p50": self.p50, "p95": self.p95, "max": self.max, "samples": self.samples,
                "closestream_to_metadata": self.closestream_to_metadata,
                "speak_to_first_audio": self.speak_to_first_audio}


@dataclass
class MessageCounts:
    """Messages by type per direction ("audio" = binary audio chunks, "empty" = b"")."""
    client: dict[str, int] = field(default_factory=dict)
    server: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"client": dict(self.client), "server": dict(self.server)}


@dataclass
class ResultCounts:
    """/v1/listen Results messages."""
    final: int = 0
    interim: int = 0
    speech_final: int = 0
    from_finalize: int = 0
    first_frame: Optional[int] = None
    first_time: Optional[float] = None
    mean_confidence: Optional[float] = None

    def to_json(self) -> dict:
        return {"final": self.final, "interim": self.interim, "speech_final": self.speech_final,
                "from_finalize": self.from_finalize, "first_frame": self.first_frame,
                "first_time": self.first_time, "mean_confidence": self.mean_confidence}


@dataclass
class SttMetadata:
    """The Metadata message speech-to-text sends at the end of a stream."""
    frame: int
    time: float
    request_id: Optional[str] = None
    sha256: Optional[str] = None  # of the audio Deepgram received
    duration: Optional[float] = None
    channels: Any = None  # as sent
    created: Any = None  # as sent

    def to_json(self) -> dict:
        return {"frame": self.frame, "time": self.time, "request_id": self.request_id,
                "sha256": self.sha256, "duration": self.duration, "channels": self.channels,
                "created": self.created}


@dataclass
class TtsMetadata:
    """The Metadata message text-to-speech sends first."""
    frame: int
    time: float
    request_id: Optional[str] = None
    model_name: Optional[str] = None
    model_version: Optional[str] = None

    def to_json(self) -> dict:
        return {"frame": self.frame, "time": self.time, "request_id": self.request_id,
                "model_name": self.model_name, "model_version": self.model_version}


@dataclass
class AgentSettings:
    """The Voice Agent's first Settings message: its input audio format."""
    frame: int
    time: float
    encoding: Optional[str]
    sample_rate: Optional[int]
    audio_before: int  # audio chunks the client sent before it

    def to_json(self) -> dict:
        return {"frame": self.frame, "time": self.time, "encoding": self.encoding,
                "sample_rate": self.sample_rate, "audio_before": self.audio_before}


@dataclass
class SpeakCounts:
    """Text-to-speech Speak messages from the client."""
    messages: int = 0
    characters: int = 0
    max_characters: int = 0
    first_time: Optional[float] = None

    def to_json(self) -> dict:
        return {"messages": self.messages, "characters": self.characters,
                "max_characters": self.max_characters, "first_time": self.first_time}


@dataclass
class UnknownType:
    """A server message type outside the documented ones."""
    count: int
    first_frame: int
    sample: str  # its first 200 characters

    def to_json(self) -> dict:
        return {"count": self.count, "first_frame": self.first_frame, "sample": self.sample}


@dataclass
class CredentialUse:
    """Where and how the client sent its credentials (masked)."""
    where: str  # header | subprotocol | query ...
    scheme: Optional[str]
    jwt: bool
    credential: Optional[str]  # masked

    def to_json(self) -> dict:
        return {"where": self.where, "scheme": self.scheme, "jwt": self.jwt,
                "credential": self.credential}


@dataclass
class ProtocolEvents:
    """Per-endpoint protocol evidence the endpoint-aware rules read (who spoke first,
    Configure and its replies, Settings, Flush pacing, the Flux turn left open)."""
    first_server_text: Optional[TypedFrameRef] = None  # the greeting, when there is one
    first_client_message: Optional[TypedFrameRef] = None  # its JSON type, or "audio"
    configure: Occurrences = field(default_factory=Occurrences)  # client Configure messages
    # ConfigureSuccess / ConfigureFailure / Configure-related Error; items: {"type", "code"}
    configure_replies: Occurrences = field(default_factory=Occurrences)
    settings: Occurrences = field(default_factory=Occurrences)  # every Settings message
    audio_before_settings_applied: Occurrences = field(default_factory=Occurrences)
    flush: Occurrences = field(default_factory=Occurrences)
    flush_peak_per_minute: int = 0  # most Flush messages within any 60 s
    flush_over_limit: Optional[FrameRef] = None  # the first Flush past the endpoint's limit
    end_summary: Optional[TypedFrameRef] = None  # SessionMetadata (/v2/speak)
    open_turn_transcript: Optional[str] = None  # Flux: the last turn's text without EndOfTurn
    # The Voice Agent's first Settings: audio.output and whether agent.speak was given.
    settings_output_encoding: Optional[str] = None
    settings_output_container: Optional[str] = None
    settings_speak_given: Optional[bool] = None
    # Flux: server messages whose sequence_id skipped numbers; items: {"expected", "got"}
    sequence_gaps: Occurrences = field(default_factory=Occurrences)

    def to_json(self) -> dict:
        return {"first_server_text": _opt(self.first_server_text),
                "first_client_message": _opt(self.first_client_message),
                "configure": self.configure.to_json(),
                "configure_replies": self.configure_replies.to_json(),
                "settings": self.settings.to_json(),
                "audio_before_settings_applied": self.audio_before_settings_applied.to_json(),
                "flush": self.flush.to_json(), "flush_peak_per_minute": self.flush_peak_per_minute,
                "flush_over_limit": _opt(self.flush_over_limit),
                "end_summary": _opt(self.end_summary),
                "open_turn_transcript": self.open_turn_transcript,
                "sequence_gaps": self.sequence_gaps.to_json(),
                "settings_output_encoding": self.settings_output_encoding,
                "settings_output_container": self.settings_output_container,
                "settings_speak_given": self.settings_speak_given}


@dataclass
class DeepgramSummary:
    """The Deepgram layer's conclusions about one session (deepgram/analyzer.py)."""
    detected: bool = False  # Deepgram path, host or response header
    # Computed once, after the session finished (deepgram/closeexplain.py); readers use this.
    close_explanation: Optional[CloseExplanation] = None
    param_problems: list[ParamProblem] = field(default_factory=list)
    handshake_cause: Optional[HandshakeCause] = None
    credentials: Optional[CredentialUse] = None
    request_id: Optional[str] = None  # Metadata's, else Connected/Welcome's, else the header
    sha256: Optional[str] = None
    metadata: Optional[SttMetadata] = None
    tts_metadata: Optional[TtsMetadata] = None
    results: ResultCounts = field(default_factory=ResultCounts)
    stream_end: Optional[TypedFrameRef] = None  # CloseStream / Close / empty binary frame
    client_data: Occurrences = field(default_factory=Occurrences)  # client text+binary messages
    keepalive: Occurrences = field(default_factory=Occurrences)
    keepalive_binary: Occurrences = field(default_factory=Occurrences)
    json_in_binary: Occurrences = field(default_factory=Occurrences)  # items: {"type"}
    text_not_json: Occurrences = field(default_factory=Occurrences)  # items: {"preview"}
    finalize: Occurrences = field(default_factory=Occurrences)
    audio_after_end: Occurrences = field(default_factory=Occurrences)
    last_server_text: Optional[TypedFrameRef] = None
    server_errors: Occurrences = field(default_factory=Occurrences)  # items: {"description", "code"}
    server_warnings: Occurrences = field(default_factory=Occurrences)
    unknown_types: dict[str, UnknownType] = field(default_factory=dict)
    settings: Optional[AgentSettings] = None
    settings_applied: Optional[FrameRef] = None
    speak: SpeakCounts = field(default_factory=SpeakCounts)
    transcript_truncated: bool = False
    protocol: ProtocolEvents = field(default_factory=ProtocolEvents)

    def to_json(self) -> dict:
        return {
            "detected": self.detected,
            "close_explanation": _opt(self.close_explanation),
            "param_problems": [p.to_json() for p in self.param_problems],
            "handshake_cause": _opt(self.handshake_cause),
            "credentials": _opt(self.credentials),
            "request_id": self.request_id, "sha256": self.sha256,
            "metadata": _opt(self.metadata), "tts_metadata": _opt(self.tts_metadata),
            "results": self.results.to_json(), "stream_end": _opt(self.stream_end),
            "client_data": self.client_data.to_json(), "keepalive": self.keepalive.to_json(),
            "keepalive_binary": self.keepalive_binary.to_json(),
            "json_in_binary": self.json_in_binary.to_json(),
            "text_not_json": self.text_not_json.to_json(), "finalize": self.finalize.to_json(),
            "audio_after_end": self.audio_after_end.to_json(),
            "last_server_text": _opt(self.last_server_text),
            "server_errors": self.server_errors.to_json(),
            "server_warnings": self.server_warnings.to_json(),
            "unknown_types": {k: v.to_json() for k, v in self.unknown_types.items()},
            "settings": _opt(self.settings), "settings_applied": _opt(self.settings_applied),
            "speak": self.speak.to_json(), "transcript_truncated": self.transcript_truncated,
            "protocol": self.protocol.to_json(),
        }


@dataclass
class ProxyLeg:
    """One TCP connection of a stream relayed by an HTTP proxy."""
    leg: str  # client-to-proxy | proxy-to-server
    tcp_stream: int
    client: str
    server: str
    start_frame: Optional[int] = None
    end_frame: Optional[int] = None

    def to_json(self) -> dict:
        return {"leg": self.leg, "tcp_stream": self.tcp_stream, "client": self.client,
                "server": self.server, "start_frame": self.start_frame,
                "end_frame": self.end_frame}


@dataclass
class ProxyInfo:
    """The session went through an HTTP proxy: a CONNECT tunnel, or a forward proxy given
    an absolute-form request target (`GET http://host/path`)."""
    kind: str  # connect | forward
    authority: str  # CONNECT's host:port, or the absolute target's host[:port]
    request_frame: Optional[int] = None
    request_time: Optional[float] = None
    # The proxy's answer to a CONNECT (None for forward proxies: the origin's 101 is the
    # handshake's response; None too when no answer is in the capture).
    status: Optional[int] = None
    reason: Optional[str] = None
    response_frame: Optional[int] = None
    response_time: Optional[float] = None
    # Both legs, when the proxy-to-server connection is in the capture too (legs.py).
    legs: list[ProxyLeg] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.kind == "connect" and self.status is not None and not 200 <= self.status < 300

    def to_json(self) -> dict:
        return {"kind": self.kind, "authority": self.authority,
                "request_frame": self.request_frame, "request_time": self.request_time,
                "status": self.status, "reason": self.reason,
                "response_frame": self.response_frame, "response_time": self.response_time,
                "legs": [leg.to_json() for leg in self.legs]}


@dataclass
class TunnelLayer:
    """One encapsulation around a session's packets (capture/decode.py decodes them)."""
    type: str  # vxlan | vxlan-gpe | geneve | gre | erspan1/2/3 | gtpu | mpls | mpls-in-ip | pppoe | ipip | ip6in4 | ip4in6 | ip6in6
    id: Optional[int] = None  # VNI, TEID, GRE key, ERSPAN or PPPoE session id, MPLS label
    id_name: Optional[str] = None  # vni | teid | key | session_id | label (None: the header has no id)
    outer_src: Optional[str] = None  # the enclosing IP header's addresses (None for MPLS, PPPoE)
    outer_dst: Optional[str] = None

    def to_json(self) -> dict:
        return {"type": self.type, "id": self.id, "id_name": self.id_name,
                "outer_src": self.outer_src, "outer_dst": self.outer_dst}


@dataclass
class MissingData:
    """Stream bytes one direction sent that are not in the capture (TCP holes), exact totals."""
    holes: int = 0
    bytes: int = 0
    first_frame: Optional[int] = None

    def to_json(self) -> dict:
        return {"holes": self.holes, "bytes": self.bytes, "first_frame": self.first_frame}


@dataclass
class TlsInfo:
    """A TLS session's handshake facts, decryption state and record activity."""
    version: Optional[str] = None
    sni: Optional[str] = None
    alpn_offered: list[str] = field(default_factory=list)
    alpn: Optional[str] = None
    cipher_suite: Optional[str] = None
    cipher_suite_id: Optional[int] = None
    resumed: bool = False
    client_random: Optional[str] = None
    server_random: Optional[str] = None
    versions_offered: list[str] = field(default_factory=list)
    hello_retry: bool = False
    psk_offered: bool = False
    early_data_offered: bool = False
    early_data_accepted: bool = False
    decryption: Optional[str] = None  # ok | no-keys | unsupported | failed
    decryption_error: Optional[str] = None
    decryption_by_direction: dict[str, Optional[str]] = field(
        default_factory=lambda: {"client": None, "server": None})
    decrypted_by: Optional[str] = None  # "tshark" when the tshark engine decrypted
    records: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})
    record_bytes: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})
    app_bytes: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})
    key_updates: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})
    # Application-data records per direction: {"client"|"server": {"app_records",
    # "app_record_bytes", "first_frame", "last_frame", "bytes_per_second"}}.
    activity: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # {direction, level, description, frame, time}
    gaps_measured_on: Optional[str] = None  # "tls-records" when the records could not be read
    note: Optional[str] = None

    def to_json(self) -> dict:
        out = {
            "version": self.version, "sni": self.sni, "alpn_offered": list(self.alpn_offered),
            "alpn": self.alpn, "cipher_suite": self.cipher_suite,
            "cipher_suite_id": self.cipher_suite_id, "resumed": self.resumed,
            "client_random": self.client_random, "server_random": self.server_random,
            "versions_offered": list(self.versions_offered), "hello_retry": self.hello_retry,
            "psk_offered": self.psk_offered, "early_data_offered": self.early_data_offered,
            "early_data_accepted": self.early_data_accepted,
            "decryption": self.decryption, "decryption_error": self.decryption_error,
            "decryption_by_direction": dict(self.decryption_by_direction),
            "records": dict(self.records), "record_bytes": dict(self.record_bytes),
            "app_bytes": dict(self.app_bytes), "key_updates": dict(self.key_updates),
            "activity": self.activity, "alerts": self.alerts,
        }
        for key in ("decrypted_by", "gaps_measured_on", "note"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class Session:
    index: int
    client: str  # "ip:port" or "[v6]:port"
    server: str
    tcp_stream: int  # Wireshark's tcp.stream number
    transport: str = "tcp"  # tcp | tls | tls-decrypted
    start_frame: Optional[int] = None
    start_time: Optional[float] = None
    end_frame: Optional[int] = None
    end_time: Optional[float] = None
    websocket: bool = False  # a 101 was seen, or a frame stream was found mid-connection
    midstream: bool = False  # the connection's start (and handshake) is not in the capture
    handshake: Handshake = field(default_factory=Handshake)
    frames: tuple[FrameCounts, FrameCounts] = field(default_factory=lambda: (FrameCounts(), FrameCounts()))
    gaps: list[Gap] = field(default_factory=list)
    close: Close = field(default_factory=Close)
    empty_binary: list[EmptyBinary] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    # Kind -> count past the anomaly record cap (limits.SESSION_ANOMALY_RECORDS).
    anomaly_overflow: dict[str, AnomalyTally] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    messages_dropped: int = 0  # text messages not kept because of the per-session cap
    findings: list[Finding] = field(default_factory=list)
    tcp_retransmissions: Optional[int] = None  # set when the TCP layer saw any
    # An HTTP proxy on the way (CONNECT tunnel or forward proxy); None when there is none.
    proxy: Optional[ProxyInfo] = None
    # Which server the client meant (SNI, Host, CONNECT authority or DNS), as egress reports it.
    server_name: Optional[ServerName] = None
    # Encapsulations the packets came in, outermost first (empty: not tunnelled).
    tunnel: list[TunnelLayer] = field(default_factory=list)
    # Per direction (client, server): TCP bytes missing from the capture; None when none.
    missing: tuple[Optional[MissingData], Optional[MissingData]] = (None, None)
    tls: Optional[TlsInfo] = None  # TLS sessions only
    # The Deepgram layer's results (DeepgramAnalyzer.finish); None when it did not run.
    endpoint: Optional[str] = None  # listen | listen-v2 | speak | speak-v2 | agent | other
    audio: Optional[AudioSummary] = None
    latency: Optional[Latency] = None
    message_counts: Optional[MessageCounts] = None  # "messages" in the JSON
    transcript: Optional[str] = None
    deepgram: Optional[DeepgramSummary] = None
    diagnosis: Optional[str] = None  # one sentence chosen from the findings (deepgram/diagnosis.py)
    # Activity per time interval (session.ActivityTimeline) for charts; not in the JSON contract.
    timeline: Any = None
    # websocket | encrypted-stream ("class" in the JSON; connections.py decides).
    connection_class: str = "websocket"
    server_name: Optional[ServerName] = None  # SNI, Host, CONNECT authority or DNS answer
    egress: Optional[Egress] = None  # client bytes, active period and rate
    copy: Optional[ConnectionCopy] = None  # the same connection captured a second time

    @property
    def anomalies_dropped(self) -> int:
        """Anomalies past the per-session record cap (counted per kind in anomaly_overflow)."""
        return sum(t.count for t in self.anomaly_overflow.values())

    def to_json(self) -> dict:
        out = {
            "index": self.index, "client": self.client, "server": self.server,
            "tcp_stream": self.tcp_stream, "transport": self.transport,
            "start_frame": self.start_frame, "start_time": self.start_time,
            "end_frame": self.end_frame, "end_time": self.end_time,
            "websocket": self.websocket, "midstream": self.midstream,
            "handshake": self.handshake.to_json(),
            "frames": {"client": self.frames[CLIENT].to_json(),
                       "server": self.frames[SERVER].to_json()},
            "gaps": [g.to_json() for g in self.gaps],
            "close": self.close.to_json(),
            "findings": [f.to_json() for f in self.findings],
            "class": self.connection_class,
            "server_name": self.server_name.to_json() if self.server_name is not None else None,
            "egress": self.egress.to_json() if self.egress is not None else None,
            "messages_dropped": self.messages_dropped,
            "anomalies_dropped": self.anomalies_dropped,
        }
        if self.tcp_retransmissions is not None:
            out["tcp_retransmissions"] = self.tcp_retransmissions
        if self.proxy is not None:
            out["proxy"] = self.proxy.to_json()
        if self.server_name is not None:
            out["server_name"] = self.server_name.to_json()
        if self.tunnel:
            out["tunnel"] = [layer.to_json() for layer in self.tunnel]
        if self.missing[CLIENT] is not None or self.missing[SERVER] is not None:
            out["missing"] = {name: None if m is None else m.to_json()
                              for name, m in (("client", self.missing[CLIENT]),
                                              ("server", self.missing[SERVER]))}
        if self.tls is not None:
            out["tls"] = self.tls.to_json()
        if self.endpoint is not None:
            out["endpoint"] = self.endpoint
        if self.audio is not None:
            out["audio"] = self.audio.to_json()
        if self.latency is not None:
            out["latency"] = self.latency.to_json()
        if self.message_counts is not None:
            out["messages"] = self.message_counts.to_json()
        if self.transcript is not None:
            out["transcript"] = self.transcript
        if self.deepgram is not None:
            out["deepgram"] = self.deepgram.to_json()
        if self.diagnosis is not None:
            out["diagnosis"] = self.diagnosis
        if self.copy is not None:
            out["copy"] = self.copy.to_json()
        return out


@dataclass
class CaptureReport:
    path: str
    format: Optional[str]  # pcap | pcapng
    packets: int = 0
    bytes: int = 0
    compressed: bool = False
    first_time: Optional[float] = None
    last_time: Optional[float] = None
    sessions: list[Session] = field(default_factory=list)
    # What could not be analysed (truncation, fragments, unknown link types...).
    findings: list[Finding] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None  # set when the file could not be read at all
    # Every TCP connection: sessions, and the summary of the others (connections.py).
    connections: Optional[Connections] = None

    def to_json(self) -> dict:
        return {"path": self.path, "format": self.format, "packets": self.packets,
                "bytes": self.bytes, "compressed": self.compressed,
                "first_time": self.first_time, "last_time": self.last_time,
                "error": self.error, "stats": self.stats,
                "connections": self.connections.to_json() if self.connections is not None else None,
                "findings": [f.to_json() for f in self.findings],
                "sessions": [s.to_json() for s in self.sessions]}


@dataclass
class Report:
    captures: list[CaptureReport]
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        from . import __version__
        from .build_kind import build_kind
        return {"schema": SCHEMA, "tool": "dgcap", "tool_version": __version__,
                "tool_build": build_kind(), "options": self.options,
                "captures": [c.to_json() for c in self.captures]}
