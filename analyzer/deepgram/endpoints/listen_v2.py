"""/v2/listen: Flux, turn-based speech-to-text.  Facts from the protocol reference, section
"/v2/listen (Flux STT)" (spec; dg:/docs/flux/quickstart; dg:/docs/flux/configuration;
dg:/docs/flux/configure) unless a comment names another source."""
from __future__ import annotations

from typing import Optional

from .spec import BOOL, ENUM, FLOAT, INT, TEXT, Code, Endpoint, Param, codes

MODELS = frozenset({"flux-general-en", "flux-general-multi"})
ENCODINGS = frozenset({"linear16", "linear32", "mulaw", "alaw", "opus", "ogg-opus"})
SAMPLE_RATES = frozenset({8000, 16000, 24000, 44100, 48000})

PARAMS = (
    Param("model", ENUM, values=MODELS, required=True),
    Param("encoding", ENUM, values=ENCODINGS),
    Param("sample_rate", INT, values=SAMPLE_RATES),
    # 0.5-0.9 on the configuration and Configure pages, 0.5-1.0 in the quickstart, and 1.0
    # is the documented way to switch native end-of-turn off (cl:2026/8/28): accept 1.0.
    Param("eot_threshold", FLOAT, low=0.5, high=1.0, default="0.7",
          note="the documented range is 0.5-0.9 on the configuration page and 0.5-1.0 in the "
               "quickstart"),
    Param("eager_eot_threshold", FLOAT, low=0.3, high=0.9),
    # 500-60000 (configuration page, quickstart) versus 500-10000 (Flux Configure page).
    Param("eot_timeout_ms", INT, low=500, high=60000, default="5000",
          note="the Flux Configure page gives 500-10000 instead (a documentation contradiction)"),
    Param("keyterm", TEXT, repeatable=True),
    Param("language_hint", TEXT, repeatable=True),  # flux-general-multi only
    Param("numerals", BOOL), Param("profanity_filter", BOOL),
    Param("redact", ENUM, repeatable=True, values=frozenset({"numbers", "aggressive_numbers"})),
    Param("mip_opt_out", BOOL), Param("tag", TEXT, repeatable=True),
)

# Error {sequence_id, code, description} is fatal (spec ListenV2FatalError).
ERRORS = codes(
    Code("INTERNAL_SERVER_ERROR", "Deepgram had an internal error and ended the stream",
         "retry; if it repeats, give Deepgram support the request id", fatal=True),
)
WARNINGS = codes(
    Code("FORCE_END_TURN_NO_ACTIVE_TURN", "ForceEndTurn was sent while no turn was open "
         "(dg:/docs/flux/force-end-turn)", "send ForceEndTurn only while a turn is in progress"),
)
# ConfigureFailure: the stream keeps its old settings; the docs example adds a code.
CONFIGURE_FAILURES = codes(
    Code("INVALID_THRESHOLD", "a threshold in Configure was out of range or inconsistent; the "
         "stream keeps its old settings", "send thresholds inside the documented ranges, with "
         "eager_eot_threshold <= eot_threshold"),
)


def _float(v: Optional[str]) -> Optional[float]:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


def combinations(query: dict, when: Optional[float]) -> list:
    from ..params import query_value
    out = []
    model = query_value(query, "model")
    encoding = query_value(query, "encoding")
    rate = query_value(query, "sample_rate")
    # Raw audio needs encoding AND sample_rate; containers (WAV, Ogg, WebM) neither.
    if encoding is not None and rate is None:
        out.append(("sample_rate", None, f"encoding={encoding} needs sample_rate on Flux (8000, "
                    "16000, 24000, 44100 or 48000; 16000 recommended); omit both for WAV, Ogg "
                    "or WebM", "error", "audio"))
    if rate is not None and encoding is None:
        out.append(("encoding", None, f"sample_rate={rate} needs encoding on Flux; omit both "
                    "for WAV, Ogg or WebM", "error", "audio"))
    eot, eager = _float(query_value(query, "eot_threshold")), _float(
        query_value(query, "eager_eot_threshold"))
    if eager is not None and eager > (eot if eot is not None else 0.7):
        out.append(("eager_eot_threshold", query_value(query, "eager_eot_threshold"),
                    f"eager_eot_threshold={eager:g} is above eot_threshold="
                    f"{eot if eot is not None else 0.7:g}; it must be <= eot_threshold or the "
                    "request fails", "error", "handshake"))
    if query.get("language_hint") is not None and model != "flux-general-multi":
        out.append(("language_hint", query_value(query, "language_hint"), "language_hint only "
                    "works with model=flux-general-multi", "warning", None))
    if query.get("language") is not None:
        out.append(("language", query_value(query, "language"), "Flux takes no language "
                    "parameter (a listed mistake); use model=flux-general-multi with "
                    "language_hint", "warning", None))
    return out


ENDPOINT = Endpoint(
    id="listen-v2", path="/v2/listen", product="Flux speech-to-text",
    params=PARAMS,
    # Client: audio (80 ms chunks), CloseStream, Configure, ForceEndTurn (cl:2026/8/28).
    # No KeepAlive message exists (spec).
    client_messages=frozenset({"CloseStream", "Configure", "ForceEndTurn"}),
    server_messages=frozenset({"Connected", "TurnInfo", "ConfigureSuccess", "ConfigureFailure",
                               "Warning", "Error"}),
    greeting="Connected", greeting_confirmed=True,  # sent on connect (spec; py#616)
    # End of stream: NO Metadata; after CloseStream Flux decodes what it has, emits
    # Updates, then closes "without sending a WebSocket close status code"
    # (dg:/docs/flux/close-stream).
    end_message="CloseStream", end_summary=None, normal_closes=frozenset({None, 1000}),
    keepalive_message=None,
    # "timeout is 60s" (Deepgram staff, py#618); users saw closes after 20-30 s (py#649).
    idle_timeout=None,
    silence_advice="Flux has no KeepAlive message (a JSON KeepAlive killed the socket, "
                   "py#649): keep the connection alive with WebSocket pings or by sending "
                   "silence (Deepgram staff quote a 60 s timeout; users saw closes after 20-30 s)",
    keepalive_rule="No KeepAlive message exists on /v2/listen (spec); use WebSocket pings "
                   "(py#618).",
    errors=ERRORS, warnings=WARNINGS, configure_failures=CONFIGURE_FAILURES,
    combinations=combinations,
)
