"""One sentence per session: what went wrong, and the next step.

The sentence speaks for the session's most important finding: the finding rules
(analyzer/findings/) decide what the evidence means, and this module only chooses
among their findings, in the order of DIAGNOSIS_PRIORITY below (the first finding
id present speaks), then any other error, then any other warning (ties broken by
OTHER_FINDINGS_PRIORITY), and only then "completed normally".  Sessions that are
not Deepgram's get neutral wording.  Nothing here re-examines the evidence: the
wording reads the findings and the typed session model (frames, the stored close
explanation), never decides again whether something went wrong.
"""
from __future__ import annotations

from typing import Callable, Optional

from ..model import CLIENT, ERROR, SERVER, WARNING, Finding, Session
from . import endpoints as ep
from .closeexplain import (CLIENT_GAP, KEEPALIVE_WITHOUT_AUDIO, WAITED_FOR_SERVER,
                           format_name, is_deepgram, session_endpoint)
from ..timefmt import clock
from ..websocket.messages import CLOSE_CODE_NAMES
from .fmt import plural, shorten
from .params import query_value

# Next steps for DATA-0000 evidence that does not already carry one.
_DATA_STEPS = {
    "json-in-binary": "; send JSON messages as text frames and only audio as binary frames",
    "keepalive-binary": '; send {"type":"KeepAlive"} as a text frame',
    None: "",
}


def _request_id(session: Session) -> Optional[str]:
    # DeepgramSummary.request_id already falls back to the dg-request-id header.
    return session.deepgram.request_id if session.deepgram is not None else None


def _code_text(code: Optional[int]) -> str:
    if code is None:
        return "an empty close frame"
    name = CLOSE_CODE_NAMES.get(code)
    return f"{code} ({name})" if name else str(code)


def _sentence(s: str) -> str:
    s = s.strip()
    return s if s.endswith((".", "!", "?")) else s + "."


def _handshake_cause(s: Session, found: list[Finding], dg: bool) -> Optional[str]:
    hs = s.handshake
    status = f"HTTP {hs.status}" + (f" {hs.reason}" if hs.reason else "")
    said = f' (dg-error: "{shorten(hs.dg_error, 100)}")' if hs.dg_error else ""
    return _sentence(f"Handshake rejected with {status}{said}: {found[0].details['message']}")


def _handshake_failed(s: Session, found: list[Finding], dg: bool) -> Optional[str]:
    hs = s.handshake
    status = f"HTTP {hs.status}" + (f" {hs.reason}" if hs.reason else "")
    body = f' (body: "{shorten(hs.body, 80)}")' if hs.body else ""
    return _sentence(f"Handshake rejected with {status}{body}: the server refused the "
                     "WebSocket upgrade; check the URL, credentials and headers it expects")


def _handshake_unanswered(s: Session, found: list[Finding], dg: bool) -> Optional[str]:
    if s.websocket or s.midstream:
        return None  # frames followed anyway: the response is only missing from the capture
    return _sentence(f"The WebSocket upgrade request (frame {found[0].frames[0]}) got no HTTP "
                     "response: check the server address, any proxy, and the network path")


def _server_error(s: Session, found: list[Finding], dg: bool) -> Optional[str]:
    first = found[0]
    code = first.details["code"]
    code_text = f" ({code})" if code is not None else ""
    text = shorten(first.details["description"], 120)
    # The endpoint module's meaning and next step for a documented code.
    meaning, step = first.details.get("meaning"), first.details.get("step")
    then = f": {meaning}; {step}" if meaning and step else "; fix what it names and reconnect"
    return _sentence(f'Deepgram reported an error at frame {first.frames[0]} ({clock(first.time)}):'
                     f' "{text}"{code_text}{then}')


def _deepgram_close(s: Session, found: list[Finding], dg: bool) -> Optional[str]:
    x = s.deepgram.close_explanation if s.deepgram is not None else None
    if x is None:  # a code outside the catalogue
        close = s.close.server
        reason = f' "{shorten(close.reason, 80)}"' if close.reason else ""
        rid = _request_id(s)
        support = f"give Deepgram support the request id {rid}" if rid else "contact Deepgram support"
        return _sentence(f"Deepgram closed the stream with {_code_text(close.code)}{reason} at "
                         f"frame {close.frame}, a code outside its documented catalogue: retry, "
                         f"and if it repeats {support}")
    label = x.label
    if x.pattern == WAITED_FOR_SERVER:
        since = x.details["seconds_after_open"]
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
        rid = _request_id(s)
        support = f" the request id {rid}" if rid else " the dg-request-id"
        return _sentence(f"Deepgram closed the stream with {label} ({x.entry.title}); "
                         f"{x.evidence}: retry, check status.deepgram.com, and if it persists "
                         f"give Deepgram support{support}")
    step = x.entry.steps[0] if x.entry.steps else "see " + x.link
    evidence = f"; {x.evidence}" if x.evidence else ""
    return _sentence(f"Deepgram closed the stream with {label} ({x.entry.title}){evidence}: "
                     f"{step[0].lower() + step[1:]}")


def _close_code(s: Session, found: list[Finding], dg: bool) -> Optional[str]:
    # The close_codes rule reports only the initiator's close (the peer's is the usual echo).
    side = found[0].details["side"]
    close = s.close.server if side == "server" else s.close.client
    reason = f' "{shorten(close.reason, 80)}"' if close.reason else ""
    if side == "server":
        return _sentence(f"The server closed the connection with {_code_text(close.code)}{reason} "
                         f"at frame {close.frame} ({clock(close.time)}): check the server's logs "
                         "for that close reason")
    return _sentence(f"The client closed the connection with {_code_text(close.code)}{reason} at "
                     f"frame {close.frame} ({clock(close.time)}): check the client's logs and "
                     "error handling for why it gave up")


def _abnormal_closure(s: Session, found: list[Finding], dg: bool) -> Optional[str]:
    close = s.close
    by = f" from the {close.tcp_end_by}" if close.tcp_end_by else ""
    # The no-closestream rule's warning says pending results were lost (its info variant
    # says Finalize had flushed them).
    lost = ""
    if session_endpoint(s) in ep.STT and any(f.id == "no-closestream" and f.severity == WARNING
                                             for f in s.findings):
        lost = "; no CloseStream was sent, so pending transcripts were lost"
    side = f" on the {close.tcp_end_by} side" if close.tcp_end_by else ""
    return _sentence(f"The connection ended with a TCP {close.tcp_end.upper()}{by} at frame "
                     f"{close.tcp_end_frame} without a WebSocket close frame (client libraries "
                     f"report 1006){lost}: look for a proxy or load-balancer idle timeout, a "
                     f"crash, or a network drop{side}")


def _no_audio_received(s: Session, found: list[Finding], dg: bool) -> Optional[str]:
    f = found[0]
    chunks = f.details["audio_chunks"]
    sent = (f" although the client sent {plural(chunks, 'audio message')}" if chunks
            else " and the client sent none")
    return _sentence(f"Deepgram received no audio (its Metadata at frame {f.frames[0]} has "
                     f"the SHA-256 of empty input){sent}: send audio on this socket after it "
                     "opens")


def _audio_undecodable(s: Session, found: list[Finding], dg: bool) -> Optional[str]:
    audio = s.audio
    first = audio.first_payload if audio is not None else None
    enc = query_value(s.handshake.query, "encoding")
    what = (f"the first payload (frame {first.frame}) is {format_name(audio)} with "
            + (f"encoding={enc}" if enc else "no encoding parameter")) if first else \
        "no audio payload was seen"
    return _sentence(f"Deepgram could not decode the audio (Metadata at frame {found[0].frames[0]} "
                     f"reports 0 s): {what}; set encoding and sample_rate for raw audio, or "
                     "omit encoding for containerised audio")


def _client_gap(s: Session, found: list[Finding], dg: bool) -> Optional[str]:
    f = max(found, key=lambda f: f.details["seconds"])  # the longest silence
    seconds, after_frame = f.details["seconds"], f.details["after_frame"]
    after = f" after frame {after_frame}" if after_frame is not None else ""
    at = f" ({clock(f.time)})"
    known = ep.knowledge(session_endpoint(s)) if dg else None
    if f.id == "client-gap":
        # The endpoint's own keep-alive rule (10 s and KeepAlive are /v1/listen's).
        step = known.silence_advice if known is not None else "check what blocked the sender"
        return _sentence(f"The client sent nothing for {seconds:.1f} s{after}{at}; {step}")
    if known is not None and known.keepalive_message:
        step = (f"check what stalled the audio source ({known.keepalive_message} keeps the "
                "session open during intended pauses)")
    elif known is not None:
        step = f"check what stalled the audio source ({known.keepalive_rule})"
    else:
        step = "check what stalled the sender"
    return _sentence(f"The client sent no audio for {seconds:.1f} s{after}{at}: {step}")


def _encrypted_timing(s: Session, found: list[Finding], dg: bool) -> Optional[str]:
    """What an encrypted stream's record timing reads as (findings/encrypted_rules.py),
    without the part saying what keys would add."""
    return _sentence(found[0].message.split(" With the TLS keys")[0].rstrip(". "))


def _empty_binary_frame(s: Session, found: list[Finding], dg: bool) -> Optional[str]:
    f = found[0]
    treat = "Deepgram treats as end of stream" if dg else "some servers treat as end of stream"
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return _sentence(f"The client sent an empty binary frame (frame {f.details['frame']} at "
                     f"{clock(f.time)}){more}, which {treat}: skip zero-length audio chunks "
                     "before sending")


Sentence = Callable[[Session, list[Finding], bool], Optional[str]]

# The priority order of the diagnosis: the first finding id present in the session
# speaks (its sentence function gets every finding with that id; None passes on).
def _own_message(s: Session, found: list[Finding], dg: bool) -> Optional[str]:
    """Findings whose message already is the diagnosis (what happened and the next step)."""
    return _sentence(found[0].message)


DIAGNOSIS_PRIORITY: tuple[tuple[str, Sentence], ...] = (
    ("proxy-refused", _own_message),  # the stream never got past an HTTP proxy
    ("handshake-cause", _handshake_cause),  # Deepgram's reason for a rejected upgrade
    ("handshake-failed", _handshake_failed),  # any other rejected upgrade
    ("handshake-unanswered", _handshake_unanswered),
    ("server-error", _server_error),  # an explicit Error message from Deepgram
    ("deepgram-close", _deepgram_close),  # Deepgram's close code, with its evidence
    ("close-code", _close_code),  # another server's, or the client's, unusual close code
    ("data-missing", _own_message),  # bytes not in the capture: messages lost, never "normal"
    ("abnormal-closure", _abnormal_closure),  # TCP end without close frames
    ("no-audio-received", _no_audio_received),  # Metadata: SHA-256 of empty input
    ("audio-undecodable", _audio_undecodable),  # Metadata: 0 s of audio
    # Encrypted streams to Deepgram without keys: what the record timing is consistent with.
    ("encrypted-net0001", _encrypted_timing),
    ("encrypted-server-closed", _encrypted_timing),
    ("encrypted-client-closed", _encrypted_timing),
    ("client-gap", _client_gap),  # silences: any frame first, then audio only
    ("audio-gap", _client_gap),
    ("empty-binary-frame", _empty_binary_frame),
)

# After those: any other error, then any other warning, their own message; among
# the same severity, in this order (unlisted ids last, in rule order).
OTHER_FINDINGS_PRIORITY = (
    "bad-accept", "keepalive-on-flux", "audio-before-settings", "first-message-not-settings",
    "second-settings", "sent-before-welcome", "no-settings-applied", "settings-invalid",
    "agent-audio-format", "statusless-close",
    "container-with-encoding", "raw-without-encoding", "json-in-binary",
    "keepalive-binary", "no-closestream", "closed-before-metadata", "audio-after-closestream",
    "param-invalid", "faster-than-realtime", "slower-than-realtime", "text-not-json",
    "flush-limit", "configure-failed", "configure-unanswered", "configure-regional",
    "sequence-gap", "server-warning", "chunk-size",
)


def finding_rank(finding_id: str) -> int:
    """Where a finding id stands in the order the diagnosis chooses: DIAGNOSIS_PRIORITY, then
    OTHER_FINDINGS_PRIORITY, then every other id (equal).  Renderers break ties with it."""
    return _RANK.get(finding_id, len(_RANK))


_RANK = {finding_id: i for i, finding_id in
         enumerate(dict.fromkeys([fid for fid, _ in DIAGNOSIS_PRIORITY] + list(OTHER_FINDINGS_PRIORITY)))}


def _other_findings(session: Session) -> Optional[str]:
    def rank(f: Finding) -> tuple:
        listed = OTHER_FINDINGS_PRIORITY
        return (0 if f.severity == ERROR else 1,
                listed.index(f.id) if f.id in listed else len(listed))

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
    known = ep.knowledge(endpoint)
    d = session.deepgram
    end_type = d.stream_end.type if d is not None and d.stream_end is not None else None
    parts = []
    if known is not None and d is not None:
        # The endpoint's documented end of stream, as far as the capture shows it.
        if known.end_message is not None and end_type == known.end_message:
            parts.append(end_type)
        if known.end_summary == "Metadata" and d.metadata is not None:
            parts.append("Metadata")
        elif known.end_summary is not None and d.protocol.end_summary is not None:
            parts.append(d.protocol.end_summary.type)
        if endpoint == ep.LISTEN_V2 and d.protocol.open_turn_transcript and end_type:
            parts.append("last Update as the final transcript")
        if endpoint == ep.AGENT and d.settings_applied is not None:
            parts.append("Settings applied")
    parts.append(code)
    noun = "Session" if endpoint == ep.AGENT else "Stream"
    return f"{noun} completed normally: {', '.join(parts)}."


def diagnose(session: Session) -> str:
    """The one-sentence diagnosis of a finished session (call after the rules ran)."""
    dg = is_deepgram(session)
    by_id: dict[str, list[Finding]] = {}
    for f in session.findings:
        by_id.setdefault(f.id, []).append(f)
    for finding_id, sentence in DIAGNOSIS_PRIORITY:
        found = by_id.get(finding_id)
        if found:
            text = sentence(session, found, dg)
            if text:
                return text
    return _other_findings(session) or _ok(session, dg)
