"""Request parameters and credentials checked against Deepgram's rules.

`check_params` lists what is wrong or unknown in the query string of a session;
`handshake_cause` names the parameter or credential most likely behind a failed
(non-101) handshake.  Both are pure functions of the handshake.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ..model import ERROR, INFO, WARNING, CredentialUse, Handshake
from ..redact import credential_secret, looks_like_jwt, mask_credential, mask_secret
from . import endpoints as ep
from .audio import RAW_ENCODINGS

LISTEN_ENCODINGS = frozenset(RAW_ENCODINGS | {"flac", "ogg-opus"})
SPEAK_ENCODINGS = frozenset({"linear16", "mulaw", "alaw", "mp3", "opus", "flac", "aac"})
SPEAK_SAMPLE_RATES = frozenset({8000, 16000, 24000, 44100, 48000})
AMR_RATES = {"amr-nb": 8000, "amr-wb": 16000}

_COMMON = {"model", "encoding", "sample_rate", "mip_opt_out", "tag"}
KNOWN_PARAMS = {
    ep.LISTEN: frozenset(_COMMON | {
        "language", "channels", "multichannel", "interim_results", "endpointing",
        "utterance_end_ms", "vad_events", "punctuate", "smart_format", "diarize",
        "diarize_version", "dictation", "numerals", "measurements", "profanity_filter",
        "redact", "replace", "search", "keyterm", "keywords", "extra", "callback",
        "callback_method", "version", "filler_words", "no_delay", "tier", "alternatives"}),
    ep.LISTEN_V2: frozenset(_COMMON | {
        "eot_threshold", "eager_eot_threshold", "eot_timeout_ms", "keyterm"}),
    ep.SPEAK: frozenset(_COMMON | {"container", "bit_rate", "callback", "callback_method"}),
}
# Deepgram deserialises booleans strictly: only lower-case true/false pass
# (mip_opt_out=False, Python's str(False), fails the handshake with 400).
BOOL_PARAMS = frozenset({"interim_results", "multichannel", "vad_events", "punctuate",
                         "smart_format", "diarize", "dictation", "numerals", "measurements",
                         "profanity_filter", "mip_opt_out", "filler_words", "no_delay"})
INT_PARAMS = frozenset({"sample_rate", "channels", "utterance_end_ms", "eot_timeout_ms"})

_LANGUAGE_CODE = re.compile(r"^(?:multi|[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)$")
_LANGUAGE_NAMES = {
    "english": "en or en-US", "spanish": "es or es-419", "french": "fr or fr-CA",
    "german": "de", "italian": "it", "portuguese": "pt or pt-BR", "dutch": "nl",
    "japanese": "ja", "korean": "ko", "chinese": "zh or zh-CN", "hindi": "hi",
    "russian": "ru", "turkish": "tr", "ukrainian": "uk", "swedish": "sv", "danish": "da",
    "norwegian": "no", "polish": "pl", "indonesian": "id", "vietnamese": "vi",
}


@dataclass(frozen=True)
class ParamProblem:
    id: str  # "param-invalid" | "param-unknown"
    severity: str
    param: str
    value: Optional[str]
    message: str  # plain English, with the fix
    # What the problem breaks: "handshake" (Deepgram answers 400), "audio" (decoding),
    # or None.  A handshake-breaking problem on a 101 session evidently was tolerated.
    breaks: Optional[str] = None

    def to_json(self) -> dict:
        return {"id": self.id, "severity": self.severity, "param": self.param,
                "value": self.value, "message": self.message, "breaks": self.breaks}


def query_value(query: dict, name: str) -> Optional[str]:
    v = query.get(name)
    if isinstance(v, list):
        v = v[0] if v else None
    return None if v is None else str(v)


def to_int(v: Optional[str]) -> Optional[int]:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def is_flux_model(model: Optional[str]) -> bool:
    return bool(model) and model.lower().startswith("flux")


def language_problem(value: str) -> Optional[str]:
    if _LANGUAGE_CODE.match(value):
        return None
    hint = _LANGUAGE_NAMES.get(value.strip().lower())
    return (f"language={value} is not a language code; use e.g. {hint}" if hint
            else f"language={value} is not a language code; use a BCP-47 code such as en or en-US")


def check_params(endpoint: str, query: dict[str, Any]) -> list[ParamProblem]:
    """What Deepgram will reject or misread in the query of a session."""
    problems: list[ParamProblem] = []

    def invalid(param: str, value: Optional[str], message: str, severity: str = ERROR,
                breaks: Optional[str] = "handshake") -> None:
        problems.append(ParamProblem("param-invalid", severity, param, value, message, breaks))

    if endpoint not in (ep.LISTEN, ep.LISTEN_V2, ep.SPEAK):
        return problems  # the Voice Agent takes its configuration in Settings
    model = query_value(query, "model")
    encoding = query_value(query, "encoding")
    rate_text = query_value(query, "sample_rate")
    rate = to_int(rate_text)

    if endpoint == ep.LISTEN and is_flux_model(model):
        invalid("model", model, f"model={model} is a Flux model, which only works on /v2/listen; "
                "connect to /v2/listen or choose a Nova model")
    if endpoint == ep.LISTEN_V2 and model and not is_flux_model(model):
        invalid("model", model, f"model={model} is not a Flux model; /v2/listen serves Flux "
                "models (e.g. flux-general-en), other models use /v1/listen", WARNING)

    for name in sorted(BOOL_PARAMS & query.keys()):
        v = query_value(query, name)
        if v not in ("true", "false"):
            fix = f"{name}={str(v).strip().lower()}" if str(v).lower() in ("true", "false") \
                else f"{name}=true or {name}=false"
            invalid(name, v, f"{name}={v} is not a boolean Deepgram accepts "
                    f"(only lower-case true/false); use {fix}")
    for name in sorted(INT_PARAMS & query.keys()):
        v = query_value(query, name)
        if to_int(v) is None or to_int(v) <= 0:
            invalid(name, v, f"{name}={v} must be a positive whole number")
    endpointing = query_value(query, "endpointing")
    if endpointing is not None and endpointing not in ("true", "false") and to_int(endpointing) is None:
        invalid("endpointing", endpointing,
                f"endpointing={endpointing} must be a number of milliseconds or false")

    language = query_value(query, "language")
    if language is not None and endpoint == ep.LISTEN:
        msg = language_problem(language)
        if msg:
            invalid("language", language, msg)

    if endpoint in ep.STT:
        if encoding is not None and encoding not in LISTEN_ENCODINGS:
            near = encoding.lower() if encoding.lower() in LISTEN_ENCODINGS else None
            invalid("encoding", encoding, f"encoding={encoding} is not a Deepgram encoding"
                    + (f"; use encoding={near}" if near else
                       "; use one of " + ", ".join(sorted(LISTEN_ENCODINGS))))
        if encoding in RAW_ENCODINGS and rate_text is None:
            invalid("sample_rate", None, f"encoding={encoding} is raw audio without a header, "
                    "so sample_rate is required; add sample_rate=<Hz of the audio>",
                    breaks="audio")
        if encoding in AMR_RATES and rate is not None and rate != AMR_RATES[encoding]:
            invalid("sample_rate", rate_text, f"encoding={encoding} must be sent at "
                    f"{AMR_RATES[encoding]} Hz, not sample_rate={rate_text}", breaks="audio")
        if query.get("utterance_end_ms") is not None and query_value(query, "interim_results") != "true":
            invalid("utterance_end_ms", query_value(query, "utterance_end_ms"),
                    "utterance_end_ms only works with interim_results=true; add interim_results=true",
                    WARNING, breaks=None)
    if endpoint == ep.SPEAK:
        if encoding is not None and encoding not in SPEAK_ENCODINGS:
            invalid("encoding", encoding, f"encoding={encoding} is not a text-to-speech output "
                    "encoding; use one of " + ", ".join(sorted(SPEAK_ENCODINGS)))
        if rate is not None and rate not in SPEAK_SAMPLE_RATES:
            invalid("sample_rate", rate_text, f"sample_rate={rate_text} is not an output rate "
                    "Deepgram offers (8000, 16000, 24000, 44100, 48000)", WARNING, breaks=None)

    unknown = sorted(k for k in query if k not in KNOWN_PARAMS[endpoint])
    if unknown:
        problems.append(ParamProblem(
            "param-unknown", INFO, ",".join(unknown), None,
            "Deepgram does not document these parameters for this endpoint: "
            + ", ".join(unknown) + " (misspelt, or meant for another endpoint)"))
    return problems


# --- credentials ------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    where: Optional[str]  # "authorization" | "subprotocol" | "query" | None
    scheme: Optional[str]  # as sent ("Token", "bearer", ...); None when missing
    secret: Optional[str] = field(default=None, repr=False)

    @property
    def is_jwt(self) -> bool:
        return bool(self.secret) and looks_like_jwt(self.secret)

    @property
    def shown(self) -> str:
        return mask_secret(self.secret or "")


def find_credentials(hs: Handshake) -> Credentials:
    auth = hs.request_header("authorization")
    if auth is not None:
        scheme, sep, rest = auth.strip().partition(" ")
        if sep and rest.strip():
            return Credentials("authorization", scheme, rest.strip())
        return Credentials("authorization", None, auth.strip())
    proto = hs.request_header("sec-websocket-protocol")
    if proto:
        items = [i.strip() for i in proto.split(",") if i.strip()]
        if len(items) >= 2 and items[0].lower() in ("token", "bearer"):
            return Credentials("subprotocol", items[0], items[1])
        if len(items) == 1 and items[0].lower() not in ("token", "bearer"):
            return Credentials("subprotocol", None, items[0])
    for name in ("token", "access_token", "authorization", "key", "api_key"):
        v = query_value(hs.query, name)
        if v:
            return Credentials("query", name, credential_secret(v))
    return Credentials(None, None)


def _auth_cause(hs: Handshake) -> tuple[str, str]:
    """(what, message) for a 401."""
    c = find_credentials(hs)
    if c.where is None:
        return ("credentials-missing", "no credentials were sent (no Authorization header, no "
                "Sec-WebSocket-Protocol token); send Authorization: Token <api key>")
    if c.where == "query":
        return ("credentials-in-query", f"the key was sent only as the query parameter "
                f"{c.scheme}=, which Deepgram does not read; send Authorization: Token <api key> "
                "(or, from a browser, Sec-WebSocket-Protocol: token, <api key>)")
    header = "Authorization header" if c.where == "authorization" else "Sec-WebSocket-Protocol"
    if c.scheme is None:
        if c.where == "subprotocol":
            return ("auth-scheme-missing", f"the {header} carries the key ({c.shown}) without the "
                    "token item; send Sec-WebSocket-Protocol: token, <api key>")
        fix = "Bearer <jwt>" if c.is_jwt else "Token <api key>"
        return ("auth-scheme-missing", f"the {header} ({c.shown}) lacks the `Token ` prefix; "
                f"send Authorization: {fix}")
    scheme = c.scheme.lower()
    if scheme == "token" and c.is_jwt:
        return ("jwt-with-token-scheme", f"a JWT ({c.shown}) was sent with the token scheme; "
                "temporary tokens go with Bearer (Authorization: Bearer <jwt>)")
    if scheme == "bearer" and not c.is_jwt:
        return ("key-with-bearer-scheme", f"an API key ({c.shown}) was sent with the Bearer "
                "scheme, which is for temporary JWTs; send Authorization: Token <api key>")
    if scheme not in ("token", "bearer"):
        return ("auth-scheme-wrong", f"the {header} uses the {c.scheme} scheme; Deepgram "
                "accepts Token <api key> or Bearer <jwt>")
    if c.is_jwt:
        return ("jwt-rejected", f"the temporary token ({c.shown}) was rejected: it has probably "
                "expired (they are short-lived) or belongs to another project; request a new one "
                "right before connecting")
    return ("key-rejected", f"the API key ({c.shown}) was rejected: it is wrong, deleted or "
            "expired; check it in the Deepgram console")


@dataclass(frozen=True)
class HandshakeCause:
    status: int
    what: str  # e.g. "param:language", "credentials-missing", "concurrency"
    param: Optional[str]  # the query parameter to blame, when one is
    message: str  # plain English, with the next step
    dg_error: Optional[str]
    request_id: Optional[str]

    def to_json(self) -> dict:
        return {"status": self.status, "what": self.what, "param": self.param,
                "message": self.message, "dg_error": self.dg_error,
                "request_id": self.request_id}


def _mentioned(problem: ParamProblem, text: str) -> bool:
    low = text.lower()
    value = (problem.value or "").lower()
    # short values ("en", "1") occur inside unrelated words
    return problem.param.lower() in low or (len(value) >= 4 and value in low)


def _bad_request_cause(hs: Handshake, endpoint: str) -> tuple[str, Optional[str], str]:
    dg_error = hs.dg_error or ""
    problems = [p for p in check_params(endpoint, hs.query)
                if p.id == "param-invalid" and p.severity == ERROR]
    # The parameter dg-error names beats our own ranking.
    for p in problems:
        if dg_error and _mentioned(p, dg_error):
            return f"param:{p.param}", p.param, p.message
    if "model/language" in dg_error.lower() or "no such model" in dg_error.lower():
        model, language = query_value(hs.query, "model"), query_value(hs.query, "language")
        lang_msg = language_problem(language) if language else None
        if lang_msg:
            return "param:language", "language", lang_msg
        return ("param:model", "model", f"model={model or '(default)'} with "
                f"language={language or '(default)'} is not an available combination; pick a "
                "model that supports the language (see Deepgram's models & languages table)")
    rank = ("model", "language", "encoding", "sample_rate")
    problems.sort(key=lambda p: rank.index(p.param) if p.param in rank else len(rank))
    if problems:
        p = problems[0]
        return f"param:{p.param}", p.param, p.message
    return ("query", None, "Deepgram rejected the request parameters; the dg-error text names "
            "the one it could not parse")


def handshake_cause(hs: Handshake, endpoint: str) -> Optional[HandshakeCause]:
    """The most likely reason a Deepgram handshake got this non-101 status."""
    status = hs.status
    if status is None or status == 101:
        return None
    model = query_value(hs.query, "model")
    param: Optional[str] = None
    if status == 400:
        what, param, message = _bad_request_cause(hs, endpoint)
    elif status == 401:
        what, message = _auth_cause(hs)
    elif status == 402:
        what, message = ("payment", "the project has no balance or credits left; add funds or "
                         "check the project's billing in the Deepgram console")
    elif status == 403:
        what, param = "permission", "model" if model else None
        message = ("the key is valid but its project has no access to "
                   + (f"model={model}" if model else "the requested model or feature")
                   + "; use a model the project is entitled to, or a key with the needed scope")
    elif status == 404:
        what, message = ("path", f"{hs.path or 'the path'} is not a Deepgram streaming endpoint; "
                         "use /v1/listen, /v2/listen, /v1/speak or /v1/agent/converse")
    elif status == 405:
        what, param = "model-not-streaming", "model" if model else None
        message = ((f"model={model}" if model else "the requested model")
                   + " is not available for streaming; choose a streaming-capable model")
    elif status == 429:
        what, message = ("concurrency", "the project hit its concurrency limit (too many open "
                         "streams); close streams you no longer use (CloseStream), retry with "
                         "backoff, or ask Deepgram to raise the limit")
    elif 500 <= status <= 599:
        support = (f"give Deepgram support the request id {hs.dg_request_id}"
                   if hs.dg_request_id else "contact Deepgram support")
        what, message = ("server", f"Deepgram had a server-side problem ({status}); retry with "
                         f"exponential backoff, check status.deepgram.com, and if it persists "
                         f"{support}")
    else:
        what, message = ("other", f"Deepgram refused the upgrade with {status}")
    return HandshakeCause(status, what, param, message, hs.dg_error, hs.dg_request_id)


def credential_summary(hs: Handshake) -> Optional[CredentialUse]:
    """Where and how credentials were sent, masked, for the report."""
    c = find_credentials(hs)
    if c.where is None:
        return None
    return CredentialUse(c.where, c.scheme, c.is_jwt,
                       mask_credential(f"{c.scheme} {c.secret}") if c.scheme and c.where != "query"
                       else c.shown)
