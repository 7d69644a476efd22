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
from .endpoints import spec, speak_v1

_LANGUAGE_CODE = re.compile(r"^(?:multi|[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)$")
_LANGUAGE_NAMES = {
    "english": "en or en-US", "spanish": "es or es-419", "french": "fr or fr-CA",
    "german": "de", "italian": "it", "portuguese": "pt or pt-BR", "dutch": "nl",
    "japanese": "ja", "korean": "ko", "chinese": "zh or zh-CN", "hindi": "hi",
    "russian": "ru", "turkish": "tr", "ukrainian": "uk", "swedish": "sv", "danish": "da",
    "norwegian": "no", "polish": "pl", "indonesian": "id", "vietnamese": "vi",
}
# The order problems are listed in: cheap syntax first, then values, then combinations.
_KIND_ORDER = (spec.BOOL, spec.INT, spec.MS_OR_FALSE, spec.FLOAT, spec.ENUM, spec.TEXT)


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


def check_params(endpoint: str, query: dict[str, Any],
                 when: Optional[float] = None) -> list[ParamProblem]:
    """What Deepgram will reject or misread in the query of a session.

    The rules come from the endpoint's module (analyzer/deepgram/endpoints/); `when`
    (epoch seconds of the capture) picks the rule where the docs changed over time.
    """
    problems: list[ParamProblem] = []
    known = ep.knowledge(endpoint)
    if known is None or not known.params:
        return problems  # not Deepgram's, or the Voice Agent (configured by Settings)

    def invalid(param: str, value: Optional[str], message: str, severity: str = ERROR,
                breaks: Optional[str] = "handshake") -> None:
        problems.append(ParamProblem("param-invalid", severity, param, value, message, breaks))

    for p in sorted(known.params, key=lambda p: (_KIND_ORDER.index(p.kind), p.name)):
        value = query_value(query, p.name)
        if value is None:
            if p.required:
                invalid(p.name, None, f"{p.name} is required on {known.path}"
                        + (" (" + ", ".join(sorted(p.values)) + ")" if p.values else ""))
            continue
        if p.rest_only:
            invalid(p.name, value, f"{p.name} is a REST-only parameter of {known.product}; the "
                    "WebSocket does not document it (what it does with it is unconfirmed)",
                    WARNING, None)
            continue
        message = _value_problem(known, p, value, when)
        if message:
            severity, breaks = ((WARNING, "handshake") if p.kind == spec.BOOL
                                else (ERROR, "handshake"))
            invalid(p.name, value, message, severity, breaks)
    language = query_value(query, "language")
    if language is not None and endpoint == ep.LISTEN:
        msg = language_problem(language)
        if msg:
            invalid("language", language, msg)
    if known.combinations is not None:
        for param, value, message, severity, breaks in known.combinations(query, when):
            invalid(param, value, message, severity, breaks)

    unknown = sorted(k for k in query if k not in known.param_names
                     and not any(pr.param == k for pr in problems))
    if unknown:
        problems.append(ParamProblem(
            "param-unknown", INFO, ",".join(unknown), None,
            "Deepgram does not document these parameters for this endpoint: "
            + ", ".join(unknown) + " (misspelt, or meant for another endpoint)"))
    return problems


def _value_problem(known: spec.Endpoint, p: spec.Param, value: str,
                   when: Optional[float]) -> Optional[str]:
    """Why `value` is not a valid value of parameter `p`, or None."""
    name = p.name
    if p.kind == spec.BOOL:
        if value in ("true", "false"):
            return None
        fix = f"{name}={value.strip().lower()}" if value.lower() in ("true", "false") \
            else f"{name}=true or {name}=false"
        # The spec's enums are lower-case; whether Deepgram rejects `True` is unconfirmed.
        return (f"{name}={value} is not a boolean as the API spec writes them (lower-case "
                f"true/false; whether Deepgram rejects other spellings is unconfirmed); use {fix}")
    if p.kind == spec.INT:
        number = to_int(value)
        if number is None or number <= 0:
            return f"{name}={value} must be a positive whole number"
        if p.values is not None and number not in p.values:
            return (f"{name}={value} is not one of the values {known.path} accepts ("
                    + ", ".join(str(v) for v in sorted(p.values)) + ")")
        return _range_problem(p, number)
    if p.kind == spec.FLOAT:
        try:
            number = float(value)
        except ValueError:
            return f"{name}={value} must be a number"
        return _range_problem(p, number)
    if p.kind == spec.MS_OR_FALSE:
        if value == "false" or to_int(value) is not None:
            return None
        return f"{name}={value} must be a number of milliseconds or false"
    if p.kind == spec.ENUM and value not in p.values:
        if name == "model" and known.id == ep.LISTEN_V2:
            if value == "flux":
                return ("model=flux is not a model name; use model=flux-general-en or "
                        "model=flux-general-multi")
            return (f"model={value} is not a Flux model; /v2/listen serves flux-general-en and "
                    "flux-general-multi, other models use /v1/listen")
        if name == "encoding" and known.id == ep.SPEAK and value in speak_v1.REST_ONLY_ENCODINGS:
            return (f"encoding={value} is REST-only: the text-to-speech WebSocket takes linear16, "
                    "mulaw or alaw")
        near = value.lower() if value.lower() in p.values else None
        what = ("a Deepgram encoding" if name == "encoding" and known.id == ep.LISTEN
                else f"an encoding {known.path} accepts" if name == "encoding"
                else f"a {name} value {known.path} accepts")
        return (f"{name}={value} is not {what}"
                + (f"; use {name}={near}" if near else "; use one of " + ", ".join(sorted(p.values))))
    return None


def _range_problem(p: spec.Param, number: float) -> Optional[str]:
    if (p.low is not None and number < p.low) or (p.high is not None and number > p.high):
        note = f" ({p.note})" if p.note else ""
        return f"{p.name}={number:g} is outside the documented range {p.low:g}-{p.high:g}{note}"
    return None


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


@dataclass(frozen=True)
class ErrorBody:
    """A failed upgrade's body, in any of the shapes oapi `ErrorResponse` allows."""
    shape: str  # "err_code" | "category" | "text" | "none"
    code: Optional[str]  # err_code, or category
    message: Optional[str]  # err_msg, or message (+ details), or the plain text
    request_id: Optional[str]


def error_body(hs: Handshake) -> ErrorBody:
    """{err_code, err_msg, request_id}, {category, message, details, request_id}, or text."""
    obj = hs.body_json if isinstance(hs.body_json, dict) else None

    def text(v: Any) -> Optional[str]:
        return v if isinstance(v, str) and v else None

    if obj is not None and ("err_code" in obj or "err_msg" in obj):
        return ErrorBody("err_code", text(obj.get("err_code")), text(obj.get("err_msg")),
                         text(obj.get("request_id")))
    if obj is not None and ("category" in obj or "message" in obj):
        message, details = text(obj.get("message")), text(obj.get("details"))
        joined = f"{message} ({details})" if message and details else message or details
        return ErrorBody("category", text(obj.get("category")), joined,
                         text(obj.get("request_id")))
    body = (hs.body or "").strip()
    if body and obj is None:
        return ErrorBody("text", None, body, None)
    return ErrorBody("none", None, None, None)


def _auth_cause(hs: Handshake) -> tuple[str, str]:
    """(what, message) for a 401: invalid credentials or insufficient permissions.

    dg:/docs/errors: 401 INVALID_AUTH "Invalid credentials." and 401
    INSUFFICIENT_PERMISSIONS "User does not have sufficient permissions."; the body's
    err_code tells them apart.
    """
    c = find_credentials(hs)
    body = error_body(hs)
    said = " ".join(x for x in (body.code, body.message, hs.dg_error) if x).lower()
    if "insufficient_permissions" in said or "sufficient permissions" in said:
        return ("insufficient-permissions", "the credentials were accepted but lack the "
                "permission this request needs (401 INSUFFICIENT_PERMISSIONS); use a key whose "
                "role allows it (temporary tokens need a Member key or higher to be granted)")
    if c.where is None:
        return ("credentials-missing", "no credentials were sent (no Authorization header, no "
                "Sec-WebSocket-Protocol token); send Authorization: Token <api key>")
    if c.where == "query":
        # Deepgram documents the Authorization header and Sec-WebSocket-Protocol only;
        # whether it reads a query-string token is unconfirmed.
        return ("credentials-in-query", f"the key was sent only as the query parameter "
                f"{c.scheme}=; Deepgram documents only the Authorization header and "
                "Sec-WebSocket-Protocol (whether it reads a query-string token is unconfirmed); "
                "send Authorization: Token <api key> (or, from a browser, "
                "Sec-WebSocket-Protocol: token, <api key>)")
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
    error_code: Optional[str] = None  # err_code or category of the body
    body_shape: str = "none"  # which ErrorResponse shape the body had

    def to_json(self) -> dict:
        return {"status": self.status, "what": self.what, "param": self.param,
                "message": self.message, "dg_error": self.dg_error,
                "request_id": self.request_id, "error_code": self.error_code,
                "body_shape": self.body_shape}


def _mentioned(problem: ParamProblem, text: str) -> bool:
    low = text.lower()
    value = (problem.value or "").lower()
    # short values ("en", "1") occur inside unrelated words
    return problem.param.lower() in low or (len(value) >= 4 and value in low)


def _bad_request_cause(hs: Handshake, endpoint: str) -> tuple[str, Optional[str], str]:
    dg_error = hs.dg_error or ""
    problems = [p for p in check_params(endpoint, hs.query, hs.request_time)
                if p.id == "param-invalid" and (p.severity == ERROR or p.breaks == "handshake")]
    # The parameter dg-error names beats our own ranking.
    for p in problems:
        if dg_error and _mentioned(p, dg_error):
            return f"param:{p.param}", p.param, p.message
    if endpoint in ep.TTS and "no such model" in dg_error.lower():
        # "No such model/version combination found." (dg:/docs/errors, TTS)
        model = query_value(hs.query, "model")
        names = ("Aura model names (e.g. aura-2-thalia-en)" if endpoint == ep.SPEAK
                 else "flux-{voice}-{lang} names (Aura names are rejected)")
        return ("param:model", "model", f"model={model or '(default)'} is not a text-to-speech "
                f"model/version Deepgram offers on {hs.path or 'this endpoint'}; it takes {names}")
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
    body = error_body(hs)
    return HandshakeCause(status, what, param, message, hs.dg_error or body.message,
                          hs.dg_request_id or body.request_id, body.code, body.shape)


def credential_summary(hs: Handshake) -> Optional[CredentialUse]:
    """Where and how credentials were sent, masked, for the report."""
    c = find_credentials(hs)
    if c.where is None:
        return None
    return CredentialUse(c.where, c.scheme, c.is_jwt,
                       mask_credential(f"{c.scheme} {c.secret}") if c.scheme and c.where != "query"
                       else c.shown)
