"""One sentence per session: what went wrong, and the next step.

Checks run in priority order and the first that applies speaks:
handshake failure (with the likely parameter or credential) > an explicit server
Error message > the server's close code with its evidence > a connection that
ended without close frames > Deepgram's Metadata showing no / undecodable audio >
client silences > an empty binary frame > remaining errors and warnings >
"completed normally".  Sessions that are not Deepgram's get neutral wording.
"""
from __future__ import annotations

from typing import Callable, Optional

from ..model import ERROR, WARNING, Finding, Session
from . import endpoints as ep
from .closeexplain import (CLIENT_GAP, KEEPALIVE_WITHOUT_AUDIO, WAITED_FOR_SERVER,
                           explain_server_close, format_name, is_deepgram, session_endpoint)
from .fmt import clock, plural, shorten
from .messages import EMPTY_SHA256
from .params import handshake_cause, query_value

RFC_CLOSE_NAMES = {
    1000: "normal closure", 1001: "going away", 1002: "protocol error", 1003: "unsupported data",
    1005: "no status", 1006: "abnormal closure", 1007: "invalid payload data",
    1008: "policy violation", 1009: "message too big", 1010: "missing extension",
    1011: "internal error", 1012: "service restart", 1013: "try again later",
    1014: "bad gateway", 1015: "TLS handshake failure",
}

# Findings consulted after the evidence checks, most important first.
FINDING_PRIORITY = (
    "bad-accept", "container-with-encoding", "raw-without-encoding", "json-in-binary",
    "keepalive-binary", "no-closestream", "closed-before-metadata", "audio-after-closestream",
    "param-invalid", "faster-than-realtime", "slower-than-realtime", "text-not-json",
    "server-warning", "chunk-size",
)


# Next steps for DATA-0000 evidence that does not already carry one.
_DATA_STEPS = {
    "json-in-binary": "; send JSON messages as text frames and only audio as binary frames",
    "keepalive-binary": '; send {"type":"KeepAlive"} as a text frame',
    None: "",
}


def _dg(session: Session) -> dict:
    return session.extra.get("deepgram") or {}


def _code_text(code: Optional[int]) -> str:
    if code is None:
        return "an empty close frame"
    name = RFC_CLOSE_NAMES.get(code)
    return f"{code} ({name})" if name else str(code)


def _sentence(s: str) -> str:
    s = s.strip()
    return s if s.endswith((".", "!", "?")) else s + "."


def _handshake(session: Session, dg: bool) -> Optional[str]:
    hs = session.handshake
    if hs.status is not None and hs.status != 101:
        status = f"HTTP {hs.status}" + (f" {hs.reason}" if hs.reason else "")
        if dg:
            cause = handshake_cause(hs, session_endpoint(session))
            said = f' (dg-error: "{shorten(hs.dg_error, 100)}")' if hs.dg_error else ""
            return _sentence(f"Handshake rejected with {status}{said}: {cause.message}")
        body = f' (body: "{shorten(hs.body, 80)}")' if hs.body else ""
        return _sentence(f"Handshake rejected with {status}{body}: the server refused the "
                         "WebSocket upgrade; check the URL, credentials and headers it expects")
    if (hs.request_frame is not None and hs.status is None and not session.websocket
            and not session.midstream):
        return _sentence(f"The WebSocket upgrade request (frame {hs.request_frame}) got no HTTP "
                         "response: check the server address, any proxy, and the network path")
    return None


def _server_error(session: Session, dg: bool) -> Optional[str]:
    items = (_dg(session).get("server_errors") or {}).get("items") or []
    if not dg or not items:
        return None
    first = items[0]
    code = f" ({first['code']})" if first.get("code") is not None else ""
    text = shorten(first.get("description") or "no description", 120)
    return _sentence(f'Deepgram reported an error at frame {first["frame"]} ({clock(first["time"])}):'
                     f' "{text}"{code}; fix what it names and reconnect')


def _close(session: Session, dg: bool) -> Optional[str]:
    close = session.close.server
    if close is None:
        return None
    x = explain_server_close(session) if dg else None
    if x is not None:
        if x.entry.name == "normal":
            return None
        label = x.label
        if x.pattern == WAITED_FOR_SERVER:
            since = x.details.get("seconds_after_open")
            when = f" {since:.1f} s after the 101" if since is not None else ""
            return _sentence(f"Deepgram closed the stream with {label}{when} because the client "
                             "never sent a frame: send audio as soon as the connection opens "
                             "instead of waiting for a server message")
        if x.pattern == KEEPALIVE_WITHOUT_AUDIO:
            return _sentence(f"Deepgram closed the stream with {label} because the client sent "
                             "only KeepAlive and never audio: send audio (or silence) within 10 s "
                             "of opening, since KeepAlive only holds a stream that has had audio")
        if x.pattern == CLIENT_GAP:
            return _sentence(f"Deepgram closed the stream with {label} because the client went "
                             f"silent: {x.evidence}; keep sending audio (or silence), or send "
                             "KeepAlive every few seconds during pauses")
        if x.entry.name == "DATA-0000":
            step = _DATA_STEPS.get(x.pattern, "")
            return _sentence(f"Deepgram closed the stream with {label} because it could not "
                             f"decode the audio: {x.evidence}{step}")
        if x.entry.name == "NET-0000" and x.entry.family == "stt":
            rid = _dg(session).get("request_id") or session.handshake.dg_request_id
            support = f" the request id {rid}" if rid else " the dg-request-id"
            return _sentence(f"Deepgram closed the stream with {label} ({x.entry.title}); "
                             f"{x.evidence}: retry, check status.deepgram.com, and if it persists "
                             f"give Deepgram support{support}")
        step = x.entry.steps[0] if x.entry.steps else "see " + x.link
        evidence = f"; {x.evidence}" if x.evidence else ""
        return _sentence(f"Deepgram closed the stream with {label} ({x.entry.title}){evidence}: "
                         f"{step[0].lower() + step[1:]}")
    if close.code in (1000, None):
        return None
    reason = f' "{shorten(close.reason, 80)}"' if close.reason else ""
    if dg:
        rid = _dg(session).get("request_id") or session.handshake.dg_request_id
        support = f"give Deepgram support the request id {rid}" if rid else "contact Deepgram support"
        return _sentence(f"Deepgram closed the stream with {_code_text(close.code)}{reason} at "
                         f"frame {close.frame}, a code outside its documented catalogue: retry, "
                         f"and if it repeats {support}")
    return _sentence(f"The server closed the connection with {_code_text(close.code)}{reason} at "
                     f"frame {close.frame} ({clock(close.time)}): check the server's logs for "
                     "that close reason")


def _abnormal(session: Session, dg: bool) -> Optional[str]:
    close = session.close
    if close.client is not None or close.server is not None or close.tcp_end not in ("fin", "rst"):
        return None
    if not (session.websocket or session.midstream):
        return None
    by = f" from the {close.tcp_end_by}" if close.tcp_end_by else ""
    lost = ""
    d = _dg(session)
    if dg and session_endpoint(session) in ep.STT and d.get("stream_end") is None \
            and (session.extra.get("audio") or {}).get("chunks", 0):
        lost = "; no CloseStream was sent, so pending transcripts were lost"
    side = f" on the {close.tcp_end_by} side" if close.tcp_end_by else ""
    return _sentence(f"The connection ended with a TCP {close.tcp_end.upper()}{by} at frame "
                     f"{close.tcp_end_frame} without a WebSocket close frame (client libraries "
                     f"report 1006){lost}: look for a proxy or load-balancer idle timeout, a "
                     f"crash, or a network drop{side}")


def _client_close(session: Session, dg: bool) -> Optional[str]:
    close = session.close.client
    if close is None or close.code in (1000, 1001, None) or session.close.initiator != "client":
        return None
    reason = f' "{shorten(close.reason, 80)}"' if close.reason else ""
    return _sentence(f"The client closed the connection with {_code_text(close.code)}{reason} at "
                     f"frame {close.frame} ({clock(close.time)}): check the client's logs and "
                     "error handling for why it gave up")


def _metadata(session: Session, dg: bool) -> Optional[str]:
    meta = _dg(session).get("metadata")
    if not dg or not meta:
        return None
    audio = session.extra.get("audio") or {}
    if meta.get("sha256") == EMPTY_SHA256:
        chunks = audio.get("chunks", 0)
        sent = (f" although the client sent {plural(chunks, 'audio message')}" if chunks
                else " and the client sent none")
        return _sentence(f"Deepgram received no audio (its Metadata at frame {meta['frame']} has "
                         f"the SHA-256 of empty input){sent}: send audio on this socket after it "
                         "opens")
    if meta.get("duration") == 0 and meta.get("sha256"):
        first = audio.get("first_payload")
        enc = query_value(session.handshake.query, "encoding")
        what = (f"the first payload (frame {first['frame']}) is {format_name(audio)} with "
                + (f"encoding={enc}" if enc else "no encoding parameter")) if first else \
            "no audio payload was seen"
        return _sentence(f"Deepgram could not decode the audio (Metadata at frame {meta['frame']} "
                         f"reports 0 s): {what}; set encoding and sample_rate for raw audio, or "
                         "omit encoding for containerised audio")
    return None


# Findings that read an encrypted stream's record timing (findings/encrypted_rules.py), most
# telling first; the diagnosis is their message without the "what keys would add" part.
ENCRYPTED_TIMING = ("encrypted-net0001", "encrypted-server-closed", "encrypted-client-closed")


def _encrypted_timing(session: Session, dg: bool) -> Optional[str]:
    found = {f.id: f for f in session.findings if f.id in ENCRYPTED_TIMING}
    for fid in ENCRYPTED_TIMING:
        if fid in found:
            return _sentence(found[fid].message.split(" With the TLS keys")[0].rstrip(". "))
    return None


def _gaps(session: Session, dg: bool) -> Optional[str]:
    gaps = [g for g in session.gaps if g.direction == "client"]
    if not gaps:
        return None
    any_gaps = [g for g in gaps if g.kind == "any"]
    g = max(any_gaps or gaps, key=lambda g: g.seconds)
    after = f" after frame {g.after_frame}" if g.after_frame is not None else ""
    at = f" ({clock(g.start)})"
    if g.kind == "any":
        step = ("Deepgram closes a stream after 10 s without audio or KeepAlive, so send "
                "KeepAlive (or silence) during pauses" if dg else "check what blocked the sender")
        return _sentence(f"The client sent nothing for {g.seconds:.1f} s{after}{at}; {step}")
    step = ("check what stalled the audio source (KeepAlive keeps the stream open during intended "
            "pauses)" if dg else "check what stalled the sender")
    return _sentence(f"The client sent no audio for {g.seconds:.1f} s{after}{at}: {step}")


def _empty_binary(session: Session, dg: bool) -> Optional[str]:
    if not session.empty_binary:
        return None
    e = session.empty_binary[0]
    treat = "Deepgram treats as end of stream" if dg else "some servers treat as end of stream"
    more = f" (and {len(session.empty_binary) - 1} more)" if len(session.empty_binary) > 1 else ""
    return _sentence(f"The client sent an empty binary frame (frame {e.frame} at {clock(e.time)})"
                     f"{more}, which {treat}: skip zero-length audio chunks before sending")


def _other_findings(session: Session, dg: bool) -> Optional[str]:
    def rank(f: Finding) -> tuple:
        pri = FINDING_PRIORITY.index(f.id) if f.id in FINDING_PRIORITY else len(FINDING_PRIORITY)
        return (0 if f.severity == ERROR else 1, pri)

    candidates = [f for f in session.findings if f.severity in (ERROR, WARNING)]
    if not candidates:
        return None
    return _sentence(min(candidates, key=rank).message)


def _ok(session: Session, dg: bool) -> str:
    close = session.close
    first = close.client if close.initiator == "client" else close.server
    first = first or close.server or close.client
    if first is None:
        if not (session.websocket or session.midstream) and session.handshake.request_frame is None:
            if session.transport == "tls":
                return ("The connection is TLS-encrypted and no key log was given, so its "
                        "WebSocket traffic cannot be read: record with SSLKEYLOGFILE and pass the "
                        "key log.")
            return "No WebSocket handshake or frames were seen on this connection."
        if close.tcp_end == "open":
            return "No problems found; the capture ended while the WebSocket was still open."
        return "No problems found."
    who = f" from the {close.initiator}" if close.initiator else ""
    code = "close " + (str(first.code) if first.code is not None else "without a code")
    if not dg:
        return f"WebSocket session completed normally: {code}{who}."
    endpoint = session_endpoint(session)
    d = _dg(session)
    end = d.get("stream_end") or {}
    parts = []
    if endpoint in ep.STT:
        if end.get("type") == "CloseStream":
            parts.append("CloseStream")
        if d.get("metadata"):
            parts.append("Metadata")
    elif endpoint == ep.SPEAK and end.get("type") == "Close":
        parts.append("Close")
    parts.append(code)
    noun = "Session" if endpoint == ep.AGENT else "Stream"
    return f"{noun} completed normally: {', '.join(parts)}."


CHECKS: tuple[Callable[[Session, bool], Optional[str]], ...] = (
    _handshake, _server_error, _close, _abnormal, _client_close, _metadata, _encrypted_timing, _gaps,
    _empty_binary, _other_findings,
)


def diagnose(session: Session) -> str:
    """The one-sentence diagnosis of a finished session (call after the rules ran)."""
    dg = is_deepgram(session)
    for check in CHECKS:
        sentence = check(session, dg)
        if sentence:
            return sentence
    return _ok(session, dg)
