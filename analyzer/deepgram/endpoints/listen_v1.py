"""/v1/listen: live speech-to-text (Nova).  Facts from the protocol reference, section
"/v1/listen (live STT)" unless a comment names another source."""
from __future__ import annotations

from typing import Optional

from .spec import (BOOL, ENUM, INT, MS_OR_FALSE, STT_DOC, TEXT, CloseCode, Code, Endpoint,
                   Param, codes)

# spec `ListenV1Encoding`: the 11 live encodings (reference, "Audio").
ENCODINGS = frozenset({"linear16", "linear32", "flac", "alaw", "mulaw", "amr-nb", "amr-wb",
                       "opus", "ogg-opus", "speex", "g729"})
# dg:/docs/sample-rate: amr-nb needs 8000, amr-wb 16000.
AMR_RATES = {"amr-nb": 8000, "amr-wb": 16000}
# dg:/docs/multichannel: up to 20 channels.
MAX_CHANNELS = 20

_BOOLS = ("detect_entities", "diarize", "dictation", "interim_results", "mip_opt_out",
          "multichannel", "numerals", "profanity_filter", "punctuate", "smart_format",
          "vad_events")
PARAMS = (
    # Query parameters (spec).
    Param("callback", TEXT), Param("callback_method", TEXT),
    Param("channels", INT, low=1),  # only read with encoding on raw audio (dg:/docs/channels)
    *(Param(n, BOOL) for n in _BOOLS),
    Param("diarize_model", ENUM, values=frozenset({"latest", "v1"})),  # diarize is deprecated
    Param("encoding", ENUM, values=ENCODINGS),
    Param("endpointing", MS_OR_FALSE, default="10"),
    Param("extra", TEXT, repeatable=True),
    Param("keyterm", TEXT, repeatable=True),  # Nova-3 and Flux only (dg:/docs/keyterm)
    Param("keywords", TEXT, repeatable=True),  # not Nova-3 (dg:/docs/keywords)
    Param("language", TEXT, default="en"),
    Param("model", TEXT),
    Param("redact", ENUM, repeatable=True, values=frozenset(
        {"true", "false", "pci", "numbers", "aggressive_numbers", "ssn"})),
    Param("replace", TEXT, repeatable=True), Param("search", TEXT, repeatable=True),
    Param("sample_rate", INT, low=1), Param("tag", TEXT, repeatable=True),
    Param("utterance_end_ms", INT, low=1),
    Param("version", TEXT, default="latest"),
    # Seen in the wild, not in the spec (livekit/agents issue 3519).
    Param("filler_words", BOOL), Param("no_delay", BOOL),
)

# Raw (headerless) encodings need sample_rate (dg:/docs/encoding, dg:/docs/sample-rate).
RAW_ENCODINGS = frozenset({"linear16", "linear32", "alaw", "mulaw", "amr-nb", "amr-wb", "opus",
                           "speex", "g729"})

_DATA_0000_STEPS = (
    "Check the data being sent is valid audio.",
    "Check the audio data is not empty.",
    "If the audio data is valid, check whether the audio being sent is raw or containerized.",
    "Write the audio data to a file to make sure it contains the expected audio and can be "
    "played back.",
    "Ensure Encoding and Sample Rate parameters are set correctly.",
    "See Audio Format For Live Streaming for more information.",
)
# Close codes: dg:/docs/stt-troubleshooting-websocket-data-and-net-errors (reference,
# "Close codes and in-band errors").  There is no "1002 DATA-0000": every doc version
# gives 1008.
CLOSE_CODES = (
    CloseCode("stt", 1000, "normal", "normal closure",
              "The stream ended normally: after CloseStream Deepgram sent its remaining results "
              "and the summary Metadata, then closed.", (), STT_DOC, source="seed"),
    CloseCode("stt", 1008, "DATA-0000", "the audio could not be decoded",
              "The payload cannot be decoded as audio. The payload either is not audio data or "
              "is a codec unsupported by Deepgram.", _DATA_0000_STEPS, STT_DOC, source="seed"),
    CloseCode("stt", 1011, "NET-0000", "Deepgram sent no response within its timeout",
              "The service has not transmitted a Text frame to the client within the timeout "
              "window. This may indicate an internal issue with Deepgram's systems, or Deepgram "
              "may have not received enough audio data to transcribe a frame.",
              ("This indicates an internal server error.", "Retry your request.",
               "Check Deepgram status to see if there are any ongoing issues.",
               "If Deepgram is operational, contact Support for assistance."),
              STT_DOC, "https://dpgr.am/net0000", source="seed"),
    CloseCode("stt", 1011, "NET-0001", "no audio or text message from the client for 10 s",
              "The service has not received a Binary or Text frame from the client within the "
              "timeout window. This may indicate an internal issue with Deepgram's systems, the "
              "client's systems, or the network connecting them.",
              ("Ensure audio is sent within 10 seconds of opening the connection.",
               "You can send silent audio to keep the connection alive.",
               "Using KeepAlive messages alone will not prevent closure; you must send at least "
               "one audio message.",
               "Be sure to send a Close Stream message when done.",
               "Test your network with cURL and Deepgram-hosted audio. See Generating "
               "Transcripts from the Terminal for more information.",
               "Use a tool like Wireshark to confirm audio is leaving your network."),
              STT_DOC, "https://dpgr.am/net0001", source="seed"),
)

# In-band Error (since Oct 2026, for Configure; dg:/docs/configure, cl:2026/10/2).  The
# code is in `code` (KeytermsNotSupported) or, for a SchemaError, only in `variant`.
ERRORS = codes(
    Code("KeytermsNotSupported", "Configure sent keyterms for a model without keyterm support "
         "(keyterms work on Nova-3 only); the stream stays open",
         "send keyterms only with a Nova-3 model"),
    Code("SchemaError", "Deepgram could not deserialize the last text message (an unknown "
         "field, for example); the stream stays open",
         "send only the fields Deepgram documents for that message"),
    Code("InvalidConfigureMessage", "Deepgram refused a Configure message; the stream stays "
         "open", "fix the Configure message as the description says"),
)

# Configure replies changed over October 2026 (dg:/docs/configure; cl:2026/10/19): from
# 2026-10-19 every Configure gets exactly one ConfigureSuccess or ConfigureFailure.
CONFIGURE_REPLIES_SINCE = 1792368000.0  # 2026-10-19T00:00:00Z


def combinations(query: dict, when: Optional[float]) -> list:
    """Invalid combinations: (param, value, message, severity, breaks)."""
    from ..params import is_flux_model, query_value, to_int
    out = []
    encoding = query_value(query, "encoding")
    rate_text = query_value(query, "sample_rate")
    rate = to_int(rate_text)
    model = query_value(query, "model")
    if is_flux_model(model):
        # dg:/docs/flux/quickstart; the handshake status is unconfirmed.
        out.append(("model", model, f"model={model} is a Flux model, which only works on "
                    "/v2/listen; connect to /v2/listen or choose a Nova model", "error", "handshake"))
    if encoding in RAW_ENCODINGS and rate_text is None:
        out.append(("sample_rate", None, f"encoding={encoding} is raw audio without a header, so "
                    "sample_rate is required; add sample_rate=<Hz of the audio>", "error", "audio"))
    if encoding is None and rate_text is not None:
        # dg:/docs/encoding, dg:/docs/sample-rate: each needs the other.
        out.append(("sample_rate", rate_text, f"sample_rate={rate_text} without encoding: Deepgram "
                    "reads sample_rate only together with encoding (raw audio); add encoding, or "
                    "drop both for containerised audio", "warning", None))
    if encoding in AMR_RATES and rate is not None and rate != AMR_RATES[encoding]:
        out.append(("sample_rate", rate_text, f"encoding={encoding} must be sent at "
                    f"{AMR_RATES[encoding]} Hz, not sample_rate={rate_text}", "error", "audio"))
    channels = to_int(query_value(query, "channels"))
    if channels is not None and channels > MAX_CHANNELS:
        out.append(("channels", str(channels), f"channels={channels} is more than the "
                    f"{MAX_CHANNELS} channels Deepgram's multichannel supports", "warning", None))
    if query_value(query, "channels") is not None and encoding is None:
        out.append(("channels", query_value(query, "channels"), "channels is only read together "
                    "with encoding on raw audio; add encoding and sample_rate, or drop channels",
                    "warning", None))
    ue = query_value(query, "utterance_end_ms")
    if ue is not None:
        if query_value(query, "interim_results") != "true":
            # docs-repo utterance-end.mdx
            out.append(("utterance_end_ms", ue, "utterance_end_ms only works with "
                        "interim_results=true; add interim_results=true", "warning", None))
        if to_int(ue) is not None and 0 < to_int(ue) < 1000:
            # py#279: 999 was refused with 400.
            out.append(("utterance_end_ms", ue, f"utterance_end_ms={ue} is below 1000; Deepgram "
                        "refused 999 with 400 (py#279); use 1000 or more", "error", "handshake"))
    low_model = (model or "").lower()
    if query.get("keywords") is not None and low_model.startswith("nova-3"):
        # dg:/docs/keywords; the refusal's status is unconfirmed (js#470 shows only 1006).
        out.append(("keywords", query_value(query, "keywords"), "keywords does not work with "
                    "Nova-3 (Deepgram refuses it; the exact status is unconfirmed); use keyterm",
                    "error", "handshake"))
    if query.get("keyterm") is not None and model and not (
            low_model.startswith("nova-3") or low_model.startswith("flux")):
        out.append(("keyterm", query_value(query, "keyterm"), f"keyterm works with Nova-3 and "
                    f"Flux only, not model={model}; use keywords for older models", "warning", None))
    return out


ENDPOINT = Endpoint(
    id="listen", path="/v1/listen", product="live speech-to-text (Nova)",
    params=PARAMS,
    # Client: KeepAlive, Finalize, CloseStream (spec; dg:/docs/finalize), Configure since
    # Oct 2026 (dg:/docs/configure).
    client_messages=frozenset({"KeepAlive", "Finalize", "CloseStream", "Configure"}),
    server_messages=frozenset({"Results", "Metadata", "UtteranceEnd", "SpeechStarted", "Error",
                               "ConfigureSuccess", "ConfigureFailure"}),
    greeting=None, greeting_confirmed=True,  # "none until results (no greeting)" (spec)
    end_message="CloseStream", end_summary="Metadata", normal_closes=frozenset({1000}),
    keepalive_message="KeepAlive",
    idle_timeout=10.0,  # 1011 NET-0001 after 10 s without audio or text (dg:/docs/audio-keep-alive)
    silence_advice="Deepgram closes a /v1/listen stream after 10 s without audio or a text "
                   "message (NET-0001), so send KeepAlive as a text frame every 3-5 s (or "
                   "silence) during pauses",
    keepalive_rule="KeepAlive as a TEXT frame every 3-5 s; it holds a stream only after audio "
                   "has been sent (dg:/docs/audio-keep-alive; troubleshooting guide).",
    close_codes=CLOSE_CODES, errors=ERRORS, combinations=combinations,
)
