"""Deepgram WebSocket messages: what the client sent, what the server answered.

Classification only; the analyzer decides what the sequence means.  Field names are
the ones in Deepgram's API (see docs/deepgram-protocol.md).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional

from ..http.body_content import loads_json
from .endpoints import ENDPOINTS, agent, listen_v1, listen_v2, speak_v1, speak_v2

# Client and server message types, per API, from the endpoint modules.
STT_CONTROL = listen_v1.ENDPOINT.client_messages
FLUX_CONTROL = listen_v2.ENDPOINT.client_messages
TTS_CONTROL = speak_v1.ENDPOINT.client_messages | speak_v2.ENDPOINT.client_messages
AGENT_CLIENT = agent.ENDPOINT.client_messages
CLIENT_TYPES = STT_CONTROL | FLUX_CONTROL | TTS_CONTROL | AGENT_CLIENT

SERVER_TYPES = frozenset().union(*(e.server_messages for e in ENDPOINTS.values()))

NOT_JSON = "(not JSON)"
NO_TYPE = "(no type)"

# SHA-256 of zero bytes: Deepgram's Metadata carries it when no audio arrived.
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@dataclass(frozen=True)
class Parsed:
    type: str  # the "type" field, or NOT_JSON / NO_TYPE
    obj: Optional[dict]


def parse_text(text: str) -> Parsed:
    try:
        obj = loads_json(text)  # no NaN/Infinity, no 100 000 nested brackets
    except ValueError:
        return Parsed(NOT_JSON, None)
    if not isinstance(obj, dict):
        return Parsed(NO_TYPE, None)
    t = obj.get("type")
    return Parsed(t if isinstance(t, str) and t else NO_TYPE, obj)


JSON_IN_BINARY = "JSON"  # a JSON document without a known type, sent as binary


# control_in_binary(data) is None unless data starts with one of these bytes (ASCII
# whitespace, "{" or "["): an audio chunk's first byte decides without a call.
JSON_FIRST_BYTES = frozenset(b" \t\n\r\x0b\x0c{[")


def control_in_binary(data: bytes) -> Optional[str]:
    """The type of a JSON message sent as a binary frame, if it is one.

    A control message gives its type; other JSON text gives the "type" it starts
    with (e.g. "Audio"), else JSON_IN_BINARY.  Only the first <=64 bytes are
    available; {"type":"KeepAlive"} is 20 bytes.
    """
    head = data.lstrip()
    if not head.startswith((b"{", b"[")):
        return None
    try:
        obj = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("type"), str):
        return obj["type"]
    # truncated or odd spacing: look for a known type name among the first bytes
    for t in sorted(CLIENT_TYPES, key=len, reverse=True):
        if f'"{t}"'.encode() in head:
            return t
    if not _looks_like_text(head):
        return None
    # A JSON document cut at 64 bytes still shows its own "type" near the start.
    m = _TYPE_FIELD.search(head)
    return m.group(1).decode("ascii") if m else JSON_IN_BINARY


_TYPE_FIELD = re.compile(rb'^\s*\{\s*"type"\s*:\s*"([A-Za-z][A-Za-z0-9_.-]{0,39})"')


def _looks_like_text(head: bytes) -> bool:
    # Audio bytes are almost never printable for long; JSON text always is.
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head[:-3].decode("utf-8", "ignore")  # a character cut at the 64-byte edge
    return len(head) >= 2 and all(c.isprintable() or c in "\t\r\n" for c in text)


def _num(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass(frozen=True)
class Result:
    """The parts of a /v1/listen Results message the analysis uses."""
    is_final: bool
    speech_final: bool
    start: Optional[float]
    duration: Optional[float]
    transcript: str
    confidence: Optional[float]
    channel: int
    from_finalize: bool

    @property
    def end(self) -> Optional[float]:
        if self.start is None or self.duration is None:
            return None
        return self.start + self.duration


def parse_results(obj: dict) -> Result:
    alt: dict = {}
    channel = obj.get("channel")
    if isinstance(channel, dict):
        alts = channel.get("alternatives")
        if isinstance(alts, list) and alts and isinstance(alts[0], dict):
            alt = alts[0]
    index = obj.get("channel_index")
    ch = index[0] if isinstance(index, list) and index and isinstance(index[0], int) else 0
    transcript = alt.get("transcript")
    return Result(
        is_final=obj.get("is_final") is True,
        speech_final=obj.get("speech_final") is True,
        start=_num(obj.get("start")),
        duration=_num(obj.get("duration")),
        transcript=transcript if isinstance(transcript, str) else "",
        confidence=_num(alt.get("confidence")),
        channel=ch,
        from_finalize=obj.get("from_finalize") is True,
    )


def metadata_fields(obj: dict) -> dict:
    """STT Metadata: the summary Deepgram sends after CloseStream."""
    # request_id and sha256 are strings in the model (and compiled code enforces the type):
    # anything else a peer sends there is not a request id or a digest.
    request_id, sha256 = obj.get("request_id"), obj.get("sha256")
    return {"request_id": request_id if isinstance(request_id, str) else None,
            "sha256": sha256 if isinstance(sha256, str) else None,
            "duration": _num(obj.get("duration")), "channels": obj.get("channels"),
            "created": obj.get("created")}


def error_fields(obj: dict) -> dict:
    """Error / Warning / ConfigureFailure bodies differ per API and over time.

    {code, description} (spec); TTS Warning on the wire {warn_code, warn_msg} (py#617);
    /v1/listen Configure errors {variant, code?, description, message?} where a
    SchemaError has no code, only its variant (dg:/docs/configure).
    """
    description = (obj.get("description") or obj.get("warn_msg") or obj.get("err_msg")
                   or obj.get("message"))
    code = obj.get("code") or obj.get("warn_code") or obj.get("err_code") or obj.get("variant")
    out = {"description": description if isinstance(description, str) else None,
           "code": code if isinstance(code, (str, int)) else None}
    if isinstance(obj.get("variant"), str):
        out["variant"] = obj["variant"]
    return out


def settings_audio(obj: dict) -> dict:
    """Input audio format from a Voice Agent Settings message (audio.input)."""
    audio = obj.get("audio") if isinstance(obj.get("audio"), dict) else {}
    inp = audio.get("input") if isinstance(audio.get("input"), dict) else {}
    rate = inp.get("sample_rate")
    return {"encoding": inp.get("encoding") if isinstance(inp.get("encoding"), str) else None,
            "sample_rate": rate if isinstance(rate, int) and not isinstance(rate, bool) else None}


def settings_output(obj: dict) -> dict:
    """Output audio of a Voice Agent Settings message (audio.output) and whether
    agent.speak was given (omitted: Flux TTS, dg:/docs/voice-agent-tts-models)."""
    audio = obj.get("audio") if isinstance(obj.get("audio"), dict) else {}
    out = audio.get("output") if isinstance(audio.get("output"), dict) else {}
    agent = obj.get("agent") if isinstance(obj.get("agent"), dict) else {}
    enc, container = out.get("encoding"), out.get("container")
    return {"encoding": enc if isinstance(enc, str) else None,
            "container": container if isinstance(container, str) else None,
            "speak_given": agent.get("speak") is not None}
