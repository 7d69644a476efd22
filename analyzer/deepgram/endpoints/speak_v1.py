"""/v1/speak: Aura text-to-speech over a WebSocket.  Facts from the protocol reference,
section "/v1/speak (Aura TTS WebSocket)" (spec) unless a comment names another source."""
from __future__ import annotations

from typing import Optional

from .spec import (BOOL, ENUM, FLOAT, INT, TEXT, TTS_DOC, CloseCode, Code, Endpoint, Param,
                   codes, sample_rate_problem)

ENCODINGS = frozenset({"linear16", "mulaw", "alaw"})
REST_ONLY_ENCODINGS = frozenset({"mp3", "opus", "flac", "aac"})  # dg:/docs/tts-encoding
# docs-repo tts-media-output-settings.mdx
SAMPLE_RATES = {"linear16": frozenset({8000, 16000, 24000, 32000, 48000}),
                "mulaw": frozenset({8000, 16000}), "alaw": frozenset({8000, 16000})}
DEFAULT_RATE = {"linear16": 24000, "mulaw": 8000, "alaw": 8000}

PARAMS = (
    Param("model", TEXT, default="aura-asteria-en"),
    Param("encoding", ENUM, values=ENCODINGS, default="linear16"),
    Param("sample_rate", INT, low=1),
    Param("speed", FLOAT, default="1"),
    Param("mip_opt_out", BOOL),
    # REST only (dg:/docs/tts-encoding).
    Param("container", TEXT, rest_only=True), Param("bit_rate", INT, rest_only=True),
    Param("callback", TEXT, rest_only=True),
)

# At most 20 Flush per 60 s; more gives the EXCESSIVE_FLUSH warning (docs-repo
# tts-ws-flush.mdx).
FLUSH_LIMIT, FLUSH_WINDOW = 20, 60.0

WARNINGS = codes(
    # On the wire as {"type":"Warning","warn_code":"EXCESSIVE_FLUSH","warn_msg":...}
    # while the spec says {code, description} (py#617; fix py#653).
    Code("EXCESSIVE_FLUSH", f"more than {FLUSH_LIMIT} Flush messages in {FLUSH_WINDOW:.0f} s "
         "(\"Rate limit exceeded for flushes\")", f"send Flush only at the end of a sentence or "
         f"turn, at most {FLUSH_LIMIT} per {FLUSH_WINDOW:.0f} s; SDKs that expect "
         "{code, description} failed on this warning (py#617): update the SDK"),
)

_NET_STEPS = ("Retry your request.",
              "Check Deepgram status to see if there are any ongoing issues.",
              "If Deepgram is operational, contact Support for assistance.")
# dg:/docs/tts-troubleshooting-websocket-net-and-data-errors (reference table).
CLOSE_CODES = (
    CloseCode("tts", 1000, "normal", "normal closure",
              "The stream ended normally (after a Close message or a client close).", (), TTS_DOC),
    CloseCode("tts", 1003, "MESSAGE-0000", "unsupported WebSocket message type",
              "Deepgram received a frame type the text-to-speech socket does not support: it "
              "only accepts text (JSON) messages.",
              ("Send Speak, Flush, Clear and Close as text frames, never as binary frames.",
               "Check the client does not write audio or raw bytes to the text-to-speech "
               "socket."), TTS_DOC),
    CloseCode("tts", 1008, "DATA-0000", "not a valid command",
              "Deepgram could not interpret a message as a text-to-speech command.",
              ('Send only the documented messages: {"type":"Speak","text":"..."}, Flush, Clear, '
               "Close.", "Check the JSON is well formed and the type is spelt exactly."), TTS_DOC),
    CloseCode("tts", 1008, "DATA-0001", "too many characters in the recent window",
              "Text arrived faster than Deepgram's character limit for the recent window allows.",
              ("Send text as it is produced instead of in large bursts.",
               "Check the text-to-speech rate limits that apply to the project."), TTS_DOC),
    CloseCode("tts", 1009, "BIG-0000", "message too large",
              "A message was larger than Deepgram accepts.",
              ("Split long text across several Speak messages.",), TTS_DOC),
    CloseCode("tts", 1009, "BIG-0001", "text has too many characters",
              "The text has more characters than Deepgram accepts.",
              ("Split long text across several Speak messages and Flush between them.",), TTS_DOC),
    CloseCode("tts", 1011, "NET-0000", "internal error", "Deepgram had an internal error.",
              _NET_STEPS, TTS_DOC),
    CloseCode("tts", 1011, "NET-0001", "receive failed (the client sent nothing in time)",
              "Deepgram failed to receive a message from the client in time.",
              ("Check the client keeps sending (Speak, Flush) and that its network path does not "
               "stall the socket; how long the idle limit is, is unconfirmed.",) + _NET_STEPS,
              TTS_DOC),
    CloseCode("tts", 1011, "NET-0002", "send failed",
              "Deepgram failed to send to the client.",
              ("Make sure the client keeps reading audio from the socket: a client that stops "
               "reading makes Deepgram's sends fail.",) + _NET_STEPS, TTS_DOC),
    CloseCode("tts", 1011, "NET-0003", "time limit exceeded",
              "The connection reached Deepgram's time limit for a text-to-speech stream.",
              ("Open a new connection for further text.",), TTS_DOC),
)


def combinations(query: dict, when: Optional[float]) -> list:
    return sample_rate_problem(query, SAMPLE_RATES, "the text-to-speech WebSocket")


ENDPOINT = Endpoint(
    id="speak", path="/v1/speak", product="Aura text-to-speech",
    params=PARAMS,
    client_messages=frozenset({"Speak", "Flush", "Clear", "Close"}),
    server_messages=frozenset({"Metadata", "Flushed", "Cleared", "Warning"}),
    greeting="Metadata", greeting_confirmed=False,  # timing of Metadata: unconfirmed
    end_message="Close", end_summary=None, normal_closes=frozenset({1000}),
    keepalive_message=None,  # KeepAlive does not apply to TTS (maintainer, py#326)
    idle_timeout=None,  # unconfirmed
    silence_advice="KeepAlive does not apply to /v1/speak (py#326) and its idle timeout is "
                   "unconfirmed: send text when there is some, and open a new connection after "
                   "a long pause",
    keepalive_rule="KeepAlive does not apply to TTS (py#326); the idle timeout is unconfirmed.",
    close_codes=CLOSE_CODES, warnings=WARNINGS, combinations=combinations,
)
