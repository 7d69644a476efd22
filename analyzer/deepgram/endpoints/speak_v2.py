"""/v2/speak: Flux text-to-speech (GA 12 Aug 2026, cl:2026/8/19).  Facts from the protocol
reference, section "/v2/speak (Flux TTS)" (spec; dg:/docs/flux-tts/server-messages;
dg:/docs/flux-tts/client-messages; jsdk src/api/resources/speak/resources/v2/)."""
from __future__ import annotations

import re
from typing import Optional

from .spec import BOOL, ENUM, FLOAT, INT, TEXT, Code, Endpoint, Param, codes, sample_rate_problem

ENCODINGS = frozenset({"linear16", "mulaw", "alaw"})
SAMPLE_RATES = {"linear16": frozenset({8000, 16000, 24000, 32000, 44100, 48000}),
                "mulaw": frozenset({8000, 16000}), "alaw": frozenset({8000, 16000})}
MODEL_RE = re.compile(r"^flux-[a-z0-9]+(?:-[a-z0-9]+)*-[a-z]{2}(?:-[a-z]{2})?$")
# Speed: 0.85-1.15 in 0.05 steps at GA; 0.5-1.5 from cl:2026/9/14.
WIDE_SPEED_SINCE = 1789344000.0  # 2026-09-14T00:00:00Z

PARAMS = (
    Param("model", TEXT, required=True),  # flux-{voice}-{lang}; Aura names rejected
    Param("encoding", ENUM, values=ENCODINGS, default="linear16"),
    Param("sample_rate", INT, low=1),  # default: the model's native rate
    Param("speed", FLOAT, low=0.5, high=1.5),
    Param("expressivity", FLOAT, low=-2, high=2),
    Param("mip_opt_out", BOOL), Param("tag", TEXT, repeatable=True),
)

# Warning {code, description}: the session continues.  The reference lists the warning
# codes by name only; each meaning says what the name states.
WARNINGS = codes(
    Code("NO_ACTIVE_SPEECH", "a message that needs a speech in progress (Flush, Interrupt) came "
         "while none was", "send it only while a speech is in progress"),
    Code("SYNTHESIS_RETRYING", "Deepgram is retrying a synthesis", "nothing to do unless it "
         "repeats; then give Deepgram support the request id"),
    Code("NO_SYNTHESIZABLE_TEXT", "the text contained nothing that can be spoken",
         "check the Speak text is not empty or only markup/punctuation"),
    Code("NO_AUDIO_GENERATED", "a speech produced no audio", "check the text of that turn"),
    Code("INTERRUPT_IN_PROGRESS", "an Interrupt came while another was being handled",
         "wait for SpeechInterrupted before sending another Interrupt"),
    Code("INVALID_INTERRUPT_OFFSET", "the Interrupt's playback_offset is not valid",
         'send playback_offset as {"type":"time_ms","value":<ms played>}'),
)
# Error {code, description}: always followed by close (the close code: unconfirmed).
ERRORS = codes(
    Code("MESSAGE-0000", "a client message could not be parsed", "send well-formed JSON text "
         "messages of the documented types", fatal=True),
    Code("DATA-0000", "an invalid command", "send only Speak, Flush, Close, Interrupt and "
         "Configure", fatal=True),
    Code("DATA-0002", "listed in the JS SDK only; its meaning is unconfirmed",
         "give Deepgram support the request id", fatal=True, unconfirmed=True),
    Code("BIG-0000", "a message was too large", "split long text across several Speak "
         "messages", fatal=True),
    Code("NET-0000", "an internal error", "retry; if it repeats, give Deepgram support the "
         "request id", fatal=True),
    Code("NET-0001", "Deepgram failed to receive from the client", "check the client's network "
         "path", fatal=True),
    Code("NET-0002", "Deepgram failed to send to the client", "make sure the client keeps "
         "reading audio from the socket", fatal=True),
    Code("NET-0003", "the session reached its 1 h limit", "open a new connection for further "
         "text", fatal=True),
    Code("NET-0004", "no client message for 60 s", "send text, or WebSocket pings (a ping/pong "
         "resets the timer), at least every 60 s", fatal=True),
)
CONFIGURE_FAILURES = codes(
    Code("SPEED_OUT_OF_RANGE", "Configure asked for a speed outside the allowed range",
         "use a speed in the documented range"),
    Code("SPEED_INCREMENT_INVALID", "Configure asked for a speed between the allowed steps",
         "use a speed in 0.05 steps"),
    Code("SPEED_NOT_SUPPORTED", "the model does not support changing speed",
         "do not send speed for this model"),
    Code("INTERNAL_ERROR", "Deepgram failed to apply Configure", "retry the Configure"),
)


def _float(v: Optional[str]) -> Optional[float]:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


def speed_range(when: Optional[float]) -> tuple[float, float, bool]:
    """(low, high, in 0.05 steps) for a capture taken at `when` (epoch seconds)."""
    if when is not None and when < WIDE_SPEED_SINCE:
        return 0.85, 1.15, True
    return 0.5, 1.5, False


def combinations(query: dict, when: Optional[float]) -> list:
    from ..params import query_value
    out = []
    model = query_value(query, "model")
    if model is not None and not MODEL_RE.match(model):
        out.append(("model", model, f"model={model} is not a Flux TTS model name "
                    "(flux-{voice}-{lang}); Aura model names are rejected on /v2/speak",
                    "error", "handshake"))
    out += sample_rate_problem(query, SAMPLE_RATES, "/v2/speak")
    speed = _float(query_value(query, "speed"))
    if speed is not None:
        low, high, steps = speed_range(when)
        off_step = steps and abs(round(speed / 0.05) * 0.05 - speed) > 1e-9
        if not low <= speed <= high or off_step:
            since = ("before 2026-09-14 the range was 0.85-1.15 in 0.05 steps" if steps
                     else "0.5-1.5 since 2026-09-14")
            out.append(("speed", query_value(query, "speed"), f"speed={speed:g} is outside "
                        f"what /v2/speak accepted at the capture's date ({since})",
                        "warning", None))
    return out


ENDPOINT = Endpoint(
    id="speak-v2", path="/v2/speak", product="Flux text-to-speech",
    params=PARAMS,
    client_messages=frozenset({"Speak", "Flush", "Close", "Interrupt", "Configure"}),
    server_messages=frozenset({"Connected", "SpeechStarted", "SpeechMetadata", "Flushed",
                               "SessionMetadata", "SpeechInterrupted", "ConfigureSuccess",
                               "ConfigureFailure", "Warning", "Error"}),
    greeting="Connected", greeting_confirmed=True,
    # Close drains, then closes; SessionMetadata is the last message before the close.
    end_message="Close", end_summary="SessionMetadata", normal_closes=frozenset({None, 1000}),
    keepalive_message=None,
    idle_timeout=60.0,  # Error NET-0004 after 60 s without a client message
    silence_advice="/v2/speak ends the session with Error NET-0004 after 60 s without a "
                   "client message; send text or WebSocket pings (a ping/pong resets the timer) "
                   "at least every 60 s",
    keepalive_rule="No KeepAlive message; NET-0004 after 60 s without a client message, ping/"
                   "pong resets it; NET-0003 at 1 h (dg:/docs/flux-tts/server-messages).",
    errors=ERRORS, warnings=WARNINGS, configure_failures=CONFIGURE_FAILURES,
    combinations=combinations,
)
