"""Secrets out of every output, by default.

`redact_session(session)` rewrites a Session in place; `redact_text(s)` cleans free
text.  Masks keep the scheme and the last 4 characters so two keys can be told
apart (`Token ****cdef`, `Bearer ****(JWT)…ab12`), and are never masked again:
redaction is idempotent.

Structured places (Authorization, Sec-WebSocket-Protocol, secret query parameters,
secret JSON keys) are masked by position; the raw secrets found there are then also
replaced wherever else they were echoed (a target URL, an error body, a message).
Patterns catch the rest: JWTs anywhere, `Token/Bearer <credential>`, 40-hex keys.
"""
from __future__ import annotations

import json
import re
import dataclasses
from typing import Any, Iterable, Optional, Sequence, overload
from urllib.parse import unquote_plus

from .http.body_content import loads_json

MASK = "****"
_REDACTED = MASK + "(redacted)"

SECRET_QUERY_PARAMS = frozenset({"token", "access_token", "authorization", "key",
                                 "api_key", "apikey"})
# JSON object keys whose value is a secret, in any nesting: /v1/auth/grant bodies
# (access_token), Voice Agent Settings (third-party headers.authorization, credentials).
SECRET_JSON_KEYS = frozenset({
    "authorization", "proxy-authorization", "credentials", "access_token", "refresh_token",
    "id_token", "api_key", "apikey", "x-api-key", "token", "password", "client_secret",
    "secret", "secret_access_key", "session_token", "private_key",
    # Provider keys the protocol reference lists for Voice Agent endpoint headers:
    # ElevenLabs, Google; AWS credentials (aws_bedrock think, aws_polly speak).
    "xi-api-key", "x-goog-api-key", "access_key_id",
})
SECRET_HEADERS = frozenset({"x-api-key", "api-key", "x-auth-token", "xi-api-key",
                            "x-goog-api-key"})
# Voice Agent Settings/UpdateThink/UpdateSpeak: EVERY value under endpoint.headers (of
# think, speak and think.functions[]) is a provider credential (reference, "Secrets to
# redact"), whatever the header is called.
HEADERS_KEY, ENDPOINT_KEY = "headers", "endpoint"
# Each of SECRET_JSON_KEYS and HEADERS_KEY holds one of these (a test checks it): a message
# holding none of them holds no secret key, which a few scans tell instead of one per key.
SECRET_KEY_STEMS = ("key", "token", "secret", "auth", "password", "credential", "header")

_SCHEMES = ("token", "bearer", "basic")
_CRED_CHARS = r"A-Za-z0-9._~+/=\-"

JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
# (query parameters named authorization are left to _QUERY_RE, which keeps URL form)
_AUTH_LINE_RE = re.compile(
    r"(?i)((?<![?&;])\b(?:proxy-)?authorization\s*[:=]\s*)(?!\s*\")([^\r\n,;&]+)")
_SUBPROTOCOL_LINE_RE = re.compile(r"(?i)(\bsec-websocket-protocol\s*[:=]\s*)([^\r\n]+)")
_QUERY_RE = re.compile(
    r"(?i)((?:[?&;]|%3f|%26)(?:token|access_token|authorization|key|api_key|apikey)(?:=|%3d))"
    r"((?:(?!%26|%23)[^&\s#\"'<>])+)")
# user:pass@ in a URL (the callback parameter, provider URLs), plain or percent-encoded
# as inside a query value (reference, "Secrets to redact").
_URL_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/?#@\"'<>]+)@")
_URL_USERINFO_ENC_RE = re.compile(
    r"(?i)\b([a-z][a-z0-9+.\-]*%3a%2f%2f)((?:(?!%2f|%40|%3f|%23)[^\s&#\"'<>/?@])+)%40")
_JSON_SECRET_RE = re.compile(
    r"(?i)(\"(?:" + "|".join(re.escape(k) for k in sorted(SECRET_JSON_KEYS))
    + r")\"\s*:\s*\")((?:[^\"\\]|\\.)*)(\")")
_SCHEME_CRED_RE = re.compile(
    r"(?i)\b(token|bearer)(\s+|\s*,\s*)(?!\*)([" + _CRED_CHARS + r"]{16,})")
_HEX40_RE = re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{40}(?![0-9a-fA-F])")
_SK_RE = re.compile(r"\bsk-[A-Za-z0-9_-]{20,}")


def is_masked(s: str) -> bool:
    return MASK in s


def looks_like_jwt(s: str) -> bool:
    return JWT_RE.fullmatch(s.strip()) is not None


def mask_secret(secret: str) -> str:
    """`****cdef`, or `****(JWT)…ab12` for a JWT; short secrets show nothing."""
    s = secret.strip()
    if not s or is_masked(s):
        return s
    if looks_like_jwt(s):
        return f"{MASK}(JWT)…{s[-4:]}"
    return MASK + s[-4:] if len(s) >= 12 else MASK


def mask_userinfo(userinfo: str, colon: str = ":") -> str:
    """`user:****` for `user:password`; a lone userinfo (a token) is masked whole."""
    if is_masked(userinfo):
        return userinfo
    user, sep, password = userinfo.partition(colon)
    if not sep:
        user, sep, password = userinfo.partition(colon.lower())
    if sep:
        return user + sep + mask_secret(password)
    return mask_secret(userinfo)


def url_userinfo_secrets(text: str) -> list[str]:
    """The passwords (or lone tokens) of user:pass@ URLs in text."""
    out = []
    for m in _URL_USERINFO_RE.finditer(text):
        out.append(m.group(2).partition(":")[2] or m.group(2))
    return out


def mask_credential(value: str) -> str:
    """An Authorization-style value with its scheme kept: `Token ****cdef`."""
    s = value.strip()
    if is_masked(s):
        return s
    scheme, sep, cred = s.partition(" ")
    if sep and scheme.lower() in _SCHEMES and cred.strip():
        return f"{scheme} {mask_secret(cred)}"
    return mask_secret(s)


def credential_secret(value: str) -> str:
    """The secret part of an Authorization-style value (scheme removed)."""
    s = value.strip()
    scheme, sep, cred = s.partition(" ")
    return cred.strip() if sep and scheme.lower() in _SCHEMES else s


def redact_subprotocol(value: str) -> str:
    """`token, <key>` / `bearer, <jwt>`: the item after the scheme is the secret."""
    parts = re.split(r"(,)", value)  # keep the separators: the value is shown as sent
    out = []
    secret_next = False
    for part in parts:
        item = part.strip()
        if part == "," or not item:
            out.append(part)
            continue
        if secret_next:
            lead = part[:len(part) - len(part.lstrip())]
            out.append(lead + mask_secret(item) + part[len(part.rstrip()):])
            secret_next = False
            continue
        secret_next = item.lower() in ("token", "bearer")
        out.append(redact_text(part))
    return "".join(out)


def subprotocol_secrets(value: str) -> list[str]:
    items = [i.strip() for i in value.split(",")]
    return [items[i + 1] for i in range(len(items) - 1)
            if items[i].lower() in ("token", "bearer") and items[i + 1]]


def _mask_query_value(raw: str) -> str:
    value = unquote_plus(raw)
    if is_masked(value):
        return raw
    # Spaces would end the value on a second pass; keep the URL form.
    return mask_credential(value).replace(" ", "%20")


def _mask_auth_value(value: str) -> str:
    stripped = value.rstrip()
    return mask_credential(stripped) + value[len(stripped):]


@overload
def redact_text(s: str, literals: Iterable[str] = ()) -> str: ...
@overload
def redact_text(s: None, literals: Iterable[str] = ()) -> None: ...
@overload
def redact_text(s: Optional[str], literals: Iterable[str] = ()) -> Optional[str]: ...
def redact_text(s: Optional[str], literals: Iterable[str] = ()) -> Optional[str]:
    """Mask every secret form in free text (headers, URLs, JSON, logs).

    Repeated until nothing changes: masking one form can expose another to a
    pattern (a header name inside another header's value), and a second call must
    find nothing left to do.
    """
    if not s:
        return s
    return _redact_text(s, tuple(literals))


def _redact_text(s: str, literals: tuple[str, ...], low: Optional[str] = None) -> str:
    """redact_text of a non-empty s; `low` is s.lower() when the caller has it (ASCII s only)."""
    for _ in range(8):
        cleaned = _redact_once(s, literals, low)
        if cleaned == s:
            break
        s = cleaned
        low = None
    return s


def _redact_once(s: str, literals: tuple[str, ...], low: Optional[str] = None) -> str:
    for lit in literals:
        if lit and len(lit) >= 8 and lit in s:
            s = s.replace(lit, mask_secret(lit))
            low = None
    # Each pattern needs a word that is rarely there (thousands of Results messages per
    # session): test for it first, case-insensitively like the patterns themselves.  Only
    # for ASCII text: a case-insensitive pattern also matches e.g. a dotless i, which a
    # lower-cased substring test would miss.
    if low is None and s.isascii():
        low = s.lower()
    for needs, pattern, replace in _PATTERNS:
        if needs is None:  # the 40-hex pattern: no word, but a run of 40 hex digits
            if not _may_hold_hex40(s):
                continue
        elif low is not None and needs:
            for word in needs:  # a plain loop: any() over a generator costs more, per message
                if word in low:
                    break
            else:
                continue
        s = pattern.sub(replace, s)
    return s


# bytes.translate table: a lower-case hex digit becomes "x", any other byte ".".
_HEX_DIGIT_TABLE = bytes([0x78 if c in b"0123456789abcdef" else 0x2E for c in range(256)])
_HEX40_RUN = b"x" * 40


def _may_hold_hex40(s: str) -> bool:
    """Could _HEX40_RE match in s?  False is certain; True means run it.

    The pattern needs 40 consecutive characters from [0-9a-f] (ASCII, case-sensitive).  In
    UTF-8 every byte of a non-ASCII character is >= 0x80, so s has such a run exactly when
    its UTF-8 bytes do: one translate and one substring search, against a regex that tries
    every position of a Results message (surrogatepass: a lone surrogate is not an error).
    """
    return _HEX40_RUN in s.encode("utf-8", "surrogatepass").translate(_HEX_DIGIT_TABLE)


# (words one of which a match must contain, lower-case, or None for a run of 40 hex digits;
#  pattern; replacement)
_PATTERNS = (
    (("authorization",), _AUTH_LINE_RE, lambda m: m.group(1) + _mask_auth_value(m.group(2))),
    (("sec-websocket-protocol",), _SUBPROTOCOL_LINE_RE, lambda m: m.group(1) + redact_subprotocol(m.group(2))),
    (("=",), _QUERY_RE, lambda m: m.group(1) + _mask_query_value(m.group(2))),
    # (The pattern matches only a quoted secret key, and each key holds one of these stems:
    # fewer scans of a long message than one per key.)
    (SECRET_KEY_STEMS, _JSON_SECRET_RE,
     lambda m: m.group(1) + mask_credential(m.group(2)) + m.group(3)),
    (("://",), _URL_USERINFO_RE, lambda m: m.group(1) + mask_userinfo(m.group(2)) + "@"),
    (("%3a%2f%2f",), _URL_USERINFO_ENC_RE,
     lambda m: m.group(1) + mask_userinfo(m.group(2), "%3A") + "%40"),
    (("eyj",), JWT_RE, lambda m: mask_secret(m.group(0))),
    (("token", "bearer"), _SCHEME_CRED_RE, lambda m: m.group(1) + m.group(2) + mask_secret(m.group(3))),
    (None, _HEX40_RE, lambda m: mask_secret(m.group(0))),  # None: see _may_hold_hex40
    (("sk-",), _SK_RE, lambda m: mask_secret(m.group(0))),
)


def _may_hold_secret_key(text: str, low: Optional[str] = None) -> bool:
    """Could this JSON text have a secret key?  False is certain; True means look closer.

    A key spelled with \\u escapes is not found by substring search, so any escape
    means "look closer".
    """
    if "\\u" in text or not text.isascii():
        return True
    low = text.lower() if low is None else low
    if "://" in low:
        return True
    for stem in SECRET_KEY_STEMS:  # most messages hold none: a few scans decide
        if stem in low:
            break
    else:
        return False
    for word in _QUOTED_SECRET_KEYS:
        if word in low:
            return True
    return False


# Every secret key and "headers" as a JSON key, quoted (each holds one of SECRET_KEY_STEMS).
_QUOTED_SECRET_KEYS = tuple([f'"{key}"' for key in sorted(SECRET_JSON_KEYS)] + [f'"{HEADERS_KEY}"'])


def _is_provider_headers(key: Any, parent: Optional[str]) -> bool:
    return (isinstance(key, str) and key.lower() == HEADERS_KEY
            and parent is not None and parent.lower() == ENDPOINT_KEY)


def _mask_value(v: Any) -> Any:
    if isinstance(v, str):
        return mask_credential(v)
    return v if v is None or isinstance(v, (bool, int, float)) else _REDACTED


def redact_json(obj: Any, literals: Iterable[str] = (), _parent: Optional[str] = None) -> Any:
    """A copy of a JSON-like value with secret keys masked and all strings cleaned."""
    literals = tuple(literals)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, str) and k.lower() in SECRET_JSON_KEYS:
                out[k] = _mask_value(v)
            elif _is_provider_headers(k, _parent) and isinstance(v, dict):
                out[k] = {name: _mask_value(value) for name, value in v.items()}
            elif _is_provider_headers(k, _parent):
                out[k] = _mask_value(v) if not isinstance(v, list) else [
                    {n: _mask_value(x) for n, x in item.items()} if isinstance(item, dict)
                    else _mask_value(item) for item in v]
            else:
                out[k] = redact_json(v, literals, k if isinstance(k, str) else None)
        return out
    if isinstance(obj, (list, tuple)):
        return [redact_json(v, literals, _parent) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj, literals)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _redact_model(obj, literals)
    return obj


def json_secrets(obj: Any) -> list[str]:
    """Raw secret strings under secret keys (all strings inside e.g. `credentials`,
    every value of a Voice Agent endpoint.headers) and URL passwords."""
    found: list[str] = []

    def strings(v: Any) -> None:
        if isinstance(v, str):
            found.append(credential_secret(v))
        elif isinstance(v, dict):
            for x in v.values():
                strings(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                strings(x)

    def walk(v: Any, parent: Optional[str]) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if isinstance(k, str) and k.lower() in SECRET_JSON_KEYS:
                    strings(x)
                elif _is_provider_headers(k, parent):
                    strings(x)
                else:
                    walk(x, k if isinstance(k, str) else None)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x, parent)
        elif isinstance(v, str) and "://" in v:
            found.extend(url_userinfo_secrets(v))

    walk(obj, None)
    return [s for s in found if s and not is_masked(s)]


def redact_json_text(text: Optional[str], literals: Iterable[str] = ()) -> Optional[str]:
    """Clean a text message that may be JSON, keeping its original formatting.

    Secrets under secret keys are replaced where they stand; when that leaves one
    behind (a short or differently escaped value, a non-string `credentials`), the
    message is re-serialised from the cleaned value instead.
    """
    if not text:
        return text
    literals = tuple(literals)
    low = text.lower() if text.isascii() else None
    if not _may_hold_secret_key(text, low):
        # No secret key anywhere: the JSON walks below would find nothing.
        return _redact_text(text, literals, low)
    return _redact_json_text_slow(text, literals)


def _redact_json_text_slow(text: str, literals: tuple[str, ...]) -> str:
    """redact_json_text of a text that may hold a secret key."""
    try:
        obj = loads_json(text)  # depth-limited: the walks below recurse
    except ValueError:
        return redact_text(text, literals)
    out = text
    for secret in json_secrets(obj):
        if len(secret) >= 8:
            for form in (secret, json.dumps(secret)[1:-1]):
                out = out.replace(form, mask_secret(secret))
    out = redact_text(out, literals)
    try:
        clean = not json_secrets(loads_json(out)) and not _has_secret_containers(loads_json(out))
    except ValueError:
        clean = False
    return out if clean else json.dumps(redact_json(obj, literals), ensure_ascii=False)


def _has_secret_containers(obj: Any, parent: Optional[str] = None) -> bool:
    """A dict/list left under a secret key (e.g. `credentials: {...}`) is not masked,
    nor is an endpoint.headers value that is not a string."""
    if isinstance(obj, dict):
        return any((isinstance(k, str) and k.lower() in SECRET_JSON_KEYS
                    and isinstance(v, (dict, list)))
                   or (_is_provider_headers(k, parent) and _has_unmasked_values(v))
                   or _has_secret_containers(v, k if isinstance(k, str) else None)
                   for k, v in obj.items())
    if isinstance(obj, list):
        return any(_has_secret_containers(v, parent) for v in obj)
    return False


def _has_unmasked_values(v: Any) -> bool:
    if isinstance(v, dict):
        return any(_has_unmasked_values(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_unmasked_values(x) for x in v)
    return isinstance(v, str) and bool(v) and not is_masked(v) and len(v) >= 8


def _header_secrets(headers: list[list[str]]) -> list[str]:
    found = []
    for name, value in headers:
        low = name.lower()
        if low in ("authorization", "proxy-authorization"):
            found.append(credential_secret(value))
        elif low == "sec-websocket-protocol":
            found.extend(subprotocol_secrets(value))
        elif low in SECRET_HEADERS:
            found.append(value.strip())
    return found


def redact_headers(headers: list[list[str]], literals: Iterable[str] = ()) -> None:
    literals = tuple(literals)
    for h in headers:
        name, value = h[0], h[1]
        low = name.lower()
        if low in ("authorization", "proxy-authorization"):
            h[1] = mask_credential(value)
        elif low == "sec-websocket-protocol":
            h[1] = redact_subprotocol(value)
        elif low in SECRET_HEADERS:
            h[1] = mask_secret(value)
        elif low in ("cookie", "set-cookie"):
            h[1] = _redact_cookie(value)
        else:
            h[1] = redact_text(value, literals)


_COOKIE_ATTRIBUTES = frozenset({"path", "domain", "expires", "max-age", "samesite",
                                "secure", "httponly", "partitioned"})


def _redact_cookie(value: str) -> str:
    # Cookie values are session credentials; names and Set-Cookie attributes stay.
    parts = []
    for part in value.split(";"):
        name, eq, val = part.partition("=")
        keep = not eq or name.strip().lower() in _COOKIE_ATTRIBUTES
        parts.append(part if keep else f"{name}={mask_secret(val)}")
    return ";".join(parts)


def _query_secrets(query: dict) -> list[str]:
    found = []
    for k, v in query.items():
        if k.lower() in SECRET_QUERY_PARAMS:
            for item in (v if isinstance(v, list) else [v]):
                if isinstance(item, str):
                    found.append(credential_secret(item))
    return found


def redact_query(query: dict, literals: Iterable[str] = ()) -> None:
    literals = tuple(literals)
    for k, v in list(query.items()):
        secret = k.lower() in SECRET_QUERY_PARAMS

        def clean(item: Any) -> Any:
            if not isinstance(item, str):
                return item
            return mask_credential(item) if secret else redact_text(item, literals)

        query[k] = [clean(i) for i in v] if isinstance(v, list) else clean(v)


def session_secrets(session: Any) -> list[str]:
    """Raw secrets found in the structured places of a session (longest first)."""
    return _session_secrets(session, [_may_hold_secret_key(m.text) if m.text else False
                                      for m in session.messages])


def _session_secrets(session: Any, may_hold: list[bool]) -> list[str]:
    """session_secrets, with _may_hold_secret_key of each message's text given (False
    for no text)."""
    hs = session.handshake
    found = _header_secrets(hs.request_headers) + _header_secrets(hs.response_headers)
    found += _query_secrets(hs.query)
    if hs.body_json is not None:
        found += json_secrets(hs.body_json)
    for msg, holds in zip(session.messages, may_hold):
        if holds and "{" in msg.text:
            try:
                found += json_secrets(loads_json(msg.text))
            except ValueError:
                pass
    unique = {s for s in found if s and len(s) >= 8 and not is_masked(s)}
    return sorted(unique, key=len, reverse=True)


def redact_session(session: Any) -> Any:
    """Mask every secret in a Session in place (and return it)."""
    # Whether each message's text could hold a secret key: decided once, for the secrets
    # and for the masking (thousands of Results messages per session hold none).
    may_hold = [_may_hold_secret_key(m.text) if m.text else False for m in session.messages]
    literals: Sequence[str] = _session_secrets(session, may_hold)
    hs = session.handshake
    redact_headers(hs.request_headers, literals)
    redact_headers(hs.response_headers, literals)
    redact_query(hs.query, literals)
    hs.target = redact_text(hs.target, literals)
    hs.path = redact_text(hs.path, literals)
    hs.body = redact_json_text(hs.body, literals)
    if hs.body_json is not None:
        hs.body_json = redact_json(hs.body_json, literals)
    hs.dg_error = redact_text(hs.dg_error, literals)
    hs.reason = redact_text(hs.reason, literals)
    hs.subprotocol = redact_subprotocol(hs.subprotocol) if hs.subprotocol else hs.subprotocol
    message_literals = tuple(literals)
    for msg, holds in zip(session.messages, may_hold):
        if holds:
            msg.text = _redact_json_text_slow(msg.text, message_literals)
        elif msg.text:
            msg.text = _redact_text(msg.text, message_literals)
    for frame in (session.close.client, session.close.server):
        if frame is not None:
            frame.reason = redact_text(frame.reason, literals)
    for f in session.findings:
        f.message = redact_text(f.message, literals)
        f.details = redact_json(f.details, literals)
    for a in session.anomalies:
        a.detail = redact_json(a.detail, literals)
    literals = tuple(literals)
    for summary in (session.tls, session.audio, session.latency, session.message_counts,
                    session.deepgram):
        if summary is not None:
            _redact_model(summary, literals)
    session.transcript = redact_text(session.transcript, literals)
    session.diagnosis = redact_text(session.diagnosis, literals)
    return session


def _redact_model(obj: Any, literals: Sequence[str]) -> Any:
    """A typed model object with every string cleaned (nested objects too).

    Mutable objects are cleaned in place; frozen ones (parameter problems, close-code
    entries) are copied with the cleaned values.
    """
    cleaned = {f.name: redact_json(getattr(obj, f.name), literals)
               for f in dataclasses.fields(obj) if f.init}
    if obj.__dataclass_params__.frozen:
        return dataclasses.replace(obj, **cleaned)
    for name, value in cleaned.items():
        setattr(obj, name, value)
    return obj
