"""Ties a Deepgram close frame to the evidence in the capture.

The catalogue says what a code means in general; this says what happened in this
session: the client's silence before NET-0001, that it never sent a frame at all,
that it only sent KeepAlive, or what the first audio payload was before DATA-0000.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..model import CLIENT, AudioPace, AudioSummary, CloseFrame, DeepgramSummary, Gap, Session
from . import endpoints as ep
from .audio import CONTAINER_NAMES
from .closecodes import STT, CloseCodeEntry, match_close, reason_link
from ..timefmt import clock
from .fmt import plural
from .params import query_value

WAITED_FOR_SERVER = "waited-for-server"
KEEPALIVE_WITHOUT_AUDIO = "keepalive-without-audio"
CLIENT_GAP = "client-gap"


@dataclass
class CloseExplanation:
    entry: CloseCodeEntry
    code: int
    reason: str
    frame: int
    time: float
    pattern: Optional[str] = None  # which known failure the evidence shows
    evidence: str = ""  # a clause about this session, "" when there is nothing specific
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.code}" if self.entry.name == "normal" else f"{self.code} {self.entry.name}"

    @property
    def link(self) -> str:
        return reason_link(self.reason) or self.entry.short_link or self.entry.doc

    def to_json(self) -> dict:
        out = self.entry.to_json()
        out.update({"code": self.code, "reason": self.reason, "frame": self.frame,
                    "time": self.time, "pattern": self.pattern, "evidence": self.evidence,
                    "details": self.details, "link": self.link})
        return out


def session_endpoint(session: Session) -> str:
    return session.endpoint or ep.endpoint_for_path(session.handshake.path)


def endpoint_knowledge(session: Session):
    """(endpoint, its EndpointKnowledge or None) of the session's path."""
    endpoint = session_endpoint(session)
    return endpoint, ep.knowledge(endpoint)


def is_deepgram(session: Session) -> bool:
    """Whether Deepgram wording applies: a Deepgram path, host or response header."""
    if session.deepgram is not None:
        return session.deepgram.detected
    hs = session.handshake
    return (ep.endpoint_for_path(hs.path) in ep.DEEPGRAM or hs.dg_request_id is not None
            or ep.is_deepgram_host(hs.request_header("host")))


def client_data_frames(session: Session) -> int:
    """Text and binary messages the client sent (what Deepgram's timeout counts)."""
    if session.deepgram is not None:
        return session.deepgram.client_data.count
    counts = session.frames[CLIENT]
    return counts.text + counts.binary


def audio_chunks(session: Session) -> int:
    if session.audio is not None:
        return session.audio.pace.chunks
    return session.frames[CLIENT].binary


def gap_before(session: Session, when: float) -> Optional[Gap]:
    """The client silence that lasted until `when` (a close), "any" frames first."""
    for kind in ("any", "audio"):
        found = [g for g in session.gaps if g.direction == "client" and g.kind == kind
                 and g.start <= when and g.end >= when - 1.0]
        if found:
            return max(found, key=lambda g: g.start)
    return None


def _net0001(session: Session, dg: DeepgramSummary,
             close: CloseFrame) -> tuple[Optional[str], str, dict]:
    hs = session.handshake
    since_open = (close.time - hs.response_time) if hs.response_time is not None else None
    details: dict[str, Any] = {"seconds_after_open": None if since_open is None else round(since_open, 3)}
    if client_data_frames(session) == 0 and session.midstream:
        # The client may have spoken before the capture began: claim nothing.
        return None, "no client frame was captured before the close (the capture began " \
            "mid-stream)", details
    if client_data_frames(session) == 0:
        after = f" in the {since_open:.1f} s" if since_open is not None else ""
        opened = f" between the 101 (frame {hs.response_frame}) and the close" \
            if hs.response_frame is not None else " before the close"
        return (WAITED_FOR_SERVER, f"the client sent no frame at all{after}{opened}: it waited "
                "for the server to speak first, but Deepgram sends nothing until audio arrives",
                details)
    keepalive = dg.keepalive
    if audio_chunks(session) == 0 and keepalive.count > 0:
        n = keepalive.count
        details.update(keepalives=n, first_keepalive_frame=keepalive.first_frame)
        return (KEEPALIVE_WITHOUT_AUDIO, f"the client sent {plural(n, 'KeepAlive message')} "
                f"(first No. {keepalive.first_frame}) but no audio, and KeepAlive does not "
                "hold open a stream that has had no audio", details)
    gap = gap_before(session, close.time)
    what = "frame"
    if gap is not None and gap.after_frame is not None:
        last_frame, last_time = gap.after_frame, gap.start
        details.update(gap_seconds=round(gap.seconds, 3), gap_kind=gap.kind)
        if gap.kind == "audio":
            what = "audio frame"  # text frames may have followed it
    else:
        last_frame, last_time = dg.client_data.last_frame, dg.client_data.last_time
    if last_frame is None or last_time is None or last_time > close.time:
        return None, "", details
    silence = close.time - last_time
    details.update(last_client_frame=last_frame, last_client_time=last_time,
                   silence_before_close=round(silence, 3))
    return (CLIENT_GAP, f"the client's last {what} was No. {last_frame} at {clock(last_time)}, "
            f"{silence:.1f} s before the close", details)


def format_name(audio: AudioSummary) -> str:
    fmt = audio.format
    if fmt is None:
        return "headerless (raw) audio"
    name = CONTAINER_NAMES.get(fmt, fmt)
    return f"{name} ({audio.codec})" if audio.codec else name


def _data0000(session: Session, dg: DeepgramSummary,
              close: CloseFrame) -> tuple[Optional[str], str, dict]:
    audio = session.audio
    first = audio.first_payload if audio is not None else None
    encoding = query_value(session.handshake.query, "encoding")
    if audio is None or first is None:
        jb = dg.json_in_binary
        if jb.count:
            return ("json-in-binary", f"the client's binary frames were JSON text, not audio "
                    f"(first No. {jb.first_frame})", {"json_in_binary": jb.count})
        kb = dg.keepalive_binary
        if kb.count:
            return ("keepalive-binary", f"the only binary frames were KeepAlive messages sent as "
                    f"binary (first No. {kb.first_frame}), which Deepgram "
                    "tries to decode as audio", {"keepalive_binary": kb.count})
        return None, "the client sent no audio before the close", {}
    where = f"the first audio payload (frame {first.frame}, {first.size} bytes)"
    name = format_name(audio)
    details = {"format": audio.format, "encoding": encoding,
               "first_audio_frame": first.frame}
    if audio.container and encoding:
        return ("container-with-encoding", f"{where} is {name} but encoding={encoding} was set; "
                "containerised audio must be sent without encoding", details)
    if not audio.container and not encoding:
        return ("raw-without-encoding", f"{where} has no container header and no encoding was "
                "set; raw audio needs encoding and sample_rate", details)
    if audio.container:
        return (None, f"{where} is {name}; check the stream plays back as a file", details)
    rate = query_value(session.handshake.query, "sample_rate")
    return (None, f"{where} is headerless audio declared as encoding={encoding}, "
            f"sample_rate={rate}; check both match the audio", details)


def _net0000(session: Session, dg: DeepgramSummary,
             close: CloseFrame) -> tuple[Optional[str], str, dict]:
    pace = session.audio.pace if session.audio is not None else AudioPace()
    n_results = dg.results.final + dg.results.interim
    seconds = pace.seconds
    sent = (f"{seconds:.2f} s of audio" if seconds is not None
            else plural(pace.chunks, "audio chunk"))
    evidence = f"the client had sent {sent} and Deepgram had returned {plural(n_results, 'result')}"
    details = {"audio_seconds": seconds, "results": n_results}
    configure = dg.protocol.configure
    if configure.count and configure.last_time is not None and configure.last_time <= close.time:
        # A Configure over the 500-token keyterm limit gets no Error: results stop and
        # about 30 s later the stream closes with NET-0000 (correction cl:2026/10/8).
        evidence += (f"; it had sent Configure (last at frame {configure.last_frame}, "
                     f"{close.time - configure.last_time:.0f} s before the close): keyterms over "
                     "the 500-token limit make results stop and NET-0000 follow about 30 s later")
        details["configure_frame"] = configure.last_frame
    return (None, evidence, details)


def _tts(session: Session, dg: DeepgramSummary,
         entry: CloseCodeEntry) -> tuple[Optional[str], str, dict]:
    speak = dg.speak
    if entry.name == "MESSAGE-0000":
        counts = session.message_counts
        n = session.frames[CLIENT].binary or (counts.client.get("audio", 0) if counts else 0)
        return (None, f"the client sent {plural(n, 'binary frame')}" if n else "",
                {"client_binary_frames": n})
    if entry.name in ("BIG-0000", "BIG-0001", "DATA-0001"):
        chars, msgs = speak.characters, speak.messages
        return (None, f"the client sent {chars} characters in {plural(msgs, 'Speak message')} "
                f"(largest {speak.max_characters})",
                {"characters": chars, "speak_messages": msgs,
                 "max_characters": speak.max_characters})
    if entry.name == "DATA-0000":
        bad = dg.text_not_json.count
        return (None, f"{plural(bad, 'client text message')} were not JSON" if bad else "",
                {"text_not_json": bad})
    return None, "", {}


def explain_server_close(session: Session) -> Optional[CloseExplanation]:
    """The catalogue entry for the server's close frame plus this session's evidence.

    Called once, by DeepgramAnalyzer.finish(), which stores the result in
    session.deepgram.close_explanation; everything else reads that.
    """
    close = session.close.server
    dg = session.deepgram
    if close is None or dg is None:
        return None
    entry = match_close(close.code, close.reason, session_endpoint(session))
    if entry is None:
        return None
    pattern, evidence, details = None, "", {}
    if entry.family == STT and entry.name == "NET-0001":
        pattern, evidence, details = _net0001(session, dg, close)
    elif entry.family == STT and entry.name == "DATA-0000":
        pattern, evidence, details = _data0000(session, dg, close)
    elif entry.family == STT and entry.name == "NET-0000":
        pattern, evidence, details = _net0000(session, dg, close)
    elif entry.family != STT and entry.name != "normal":
        pattern, evidence, details = _tts(session, dg, entry)
    return CloseExplanation(entry, close.code, close.reason, close.frame, close.time,
                            pattern, evidence, details)
