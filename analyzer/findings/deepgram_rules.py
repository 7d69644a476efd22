"""Deepgram finding rules: what the evidence of a finished session means.

They read the typed session model, including what DeepgramAnalyzer.finish() set
(session.endpoint, .audio, .deepgram: DeepgramSummary, ...).  Handshake evidence is
recomputed from the session itself; the server close's explanation is the one
finish() stored (session.deepgram.close_explanation).
"""
from __future__ import annotations

from typing import Iterable

from ..deepgram import audio as au
from ..deepgram import endpoints as ep
from ..deepgram.codes import code_clause, explain_code
from ..deepgram.closeexplain import (KEEPALIVE_WITHOUT_AUDIO, WAITED_FOR_SERVER, endpoint_knowledge,
                                     format_name, is_deepgram, session_endpoint)
from ..deepgram.fmt import plural, shorten
from ..timefmt import clock
from ..deepgram.messages import EMPTY_SHA256
from ..deepgram.params import query_value
from ..model import ERROR, INFO, WARNING, AudioSummary, DeepgramSummary, Finding, Session
from .registry import RuleContext, rule


def _deepgram(session: Session):
    """The session's DeepgramSummary when Deepgram wording applies to it, else None."""
    dg = session.deepgram
    return dg if dg is not None and is_deepgram(session) else None


def _opened(session: Session) -> bool:
    return session.websocket or session.handshake.status == 101 or session.midstream


# --- handshake and parameters -----------------------------------------------------

@rule
def deepgram_handshake_cause(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    # The Deepgram layer worked the cause out once (DeepgramSummary.handshake_cause).
    cause = session.deepgram.handshake_cause if session.deepgram is not None else None
    if cause is None or not is_deepgram(session):
        return []
    hs = session.handshake
    status = f"HTTP {hs.status}" + (f" {hs.reason}" if hs.reason else "")
    said = f' (dg-error: "{shorten(hs.dg_error, 160)}")' if hs.dg_error else ""
    support = (f" Give Deepgram support the request id {hs.dg_request_id}."
               if hs.dg_request_id and cause.what == "other" else "")
    return [Finding("handshake-cause", ERROR,
                    f"Handshake rejected with {status}{said}: {cause.message}.{support}",
                    frames=[f for f in (hs.response_frame,) if f is not None],
                    time=hs.response_time, details=cause.to_json())]


@rule
def deepgram_params(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    if (dg := _deepgram(session)) is None:
        return []
    hs = session.handshake
    # already reported by handshake-cause
    blamed = dg.handshake_cause.param if dg.handshake_cause is not None else None
    # A container was sent: the fix is to drop encoding (container-with-encoding),
    # not to add the sample_rate a raw encoding would need.
    container = bool(session.audio is not None and session.audio.container)
    out = []
    for p in dg.param_problems:  # checked once by the Deepgram layer
        if p.id == "param-invalid" and p.param == blamed:
            continue
        if container and p.param == "sample_rate" and p.value is None:
            continue
        severity = p.severity
        if p.breaks == "handshake" and hs.status == 101 and severity == ERROR:
            severity = WARNING  # the server accepted it after all
        out.append(Finding(p.id, severity, f"{p.message}.",
                           frames=[f for f in (hs.request_frame,) if f is not None],
                           time=hs.request_time, details=p.to_json()))
    return out


# --- client messages ----------------------------------------------------------------

@rule
def deepgram_client_messages(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    if (dg := _deepgram(session)) is None:
        return []
    out = []
    endpoint, known = endpoint_knowledge(session)
    # What a binary frame is to this endpoint: audio, or (text-to-speech) not accepted.
    binary_is = ("the text-to-speech socket accepts only text frames (a binary frame gets "
                 "close 1003 MESSAGE-0000)" if endpoint == ep.SPEAK else
                 "Deepgram reads binary frames as audio")
    kb = dg.keepalive_binary
    if kb.count:
        out.append(Finding(
            "keepalive-binary", WARNING,
            f"{plural(kb.count, 'KeepAlive message')} sent as binary frames (first No. "
            f"{kb.first_frame} at {clock(kb.first_time)}); {binary_is}, so these keep nothing "
            "alive" + (" and put noise into the audio" if endpoint != ep.SPEAK else "") + "; "
            + ('send {"type":"KeepAlive"} as a text frame.' if known is None or known.keepalive_message
               else f"{known.path} has no KeepAlive message ({known.keepalive_rule})"),
            frames=list(kb.frames), time=kb.first_time, details={"count": kb.count}))
    jb = dg.json_in_binary
    if jb.count:
        kinds = sorted({i["type"] for i in jb.items})
        closes = bool({"CloseStream", "Close"} & set(kinds))
        out.append(Finding(
            "json-in-binary", ERROR if closes else WARNING,
            f"{plural(jb.count, 'JSON message')} ({', '.join(kinds)}) sent as binary frames "
            f"(first No. {jb.first_frame} at {clock(jb.first_time)}); "
            + ("the text-to-speech socket accepts only text frames (a binary frame gets close "
               "1003 MESSAGE-0000)" if endpoint == ep.SPEAK
               else "Deepgram reads them as audio and does not act on them")
            + (", so the stream is never closed" if closes else "")
            + "; send control messages as text frames.",
            frames=list(jb.frames), time=jb.first_time,
            details={"count": jb.count, "types": kinds}))
    tj = dg.text_not_json
    if tj.count:
        out.append(Finding(
            "text-not-json", WARNING,
            f"{plural(tj.count, 'client text message')} not JSON (first No. {tj.first_frame}"
            f" at {clock(tj.first_time)}: {tj.items[0]['preview']!r}); Deepgram expects "
            f"JSON control messages such as {{\"type\":\"{_example_message(known)}\"}} on text "
            "frames.",
            frames=list(tj.frames), time=tj.first_time, details={"count": tj.count}))
    return out


def _example_message(known) -> str:
    """A control message the endpoint really has, for examples in texts."""
    if known is None:
        return "KeepAlive"
    return known.keepalive_message or known.end_message or "Settings"


def _finalize_flushed(dg: DeepgramSummary) -> bool:
    return bool(dg.finalize.count) and dg.results.from_finalize > 0


@rule
def deepgram_stream_end(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    dg, audio = session.deepgram, session.audio
    endpoint, known = endpoint_knowledge(session)
    if (dg is None or audio is None or known is None or known.end_message is None
            or not _opened(session)):
        return []
    out = []
    close = session.close
    end = dg.stream_end
    had_content = audio.pace.chunks > 0 or dg.speak.messages > 0
    client_closed = close.initiator == "client" and close.client is not None
    dropped = close.client is None and close.server is None and close.tcp_end in ("fin", "rst")
    if end is None and had_content and (client_closed or dropped):
        if client_closed:
            frame, time = close.client.frame, close.client.time
            how = f"The client closed the stream (close {close.client.code} at frame {frame}, {clock(time)})"
        else:
            frame, time = close.tcp_end_frame, close.tcp_end_time
            how = (f"The connection ended (TCP {close.tcp_end.upper()} at frame {frame}, "
                   f"{clock(time)})")
        frames = [f for f in (frame,) if f is not None]
        send = f'send {{"type":"{known.end_message}"}}'
        if endpoint in ep.TTS:
            drain = ("Deepgram then speaks what is pending, sends SessionMetadata and closes"
                     if known.end_summary else "Deepgram then closes")
            out.append(Finding(
                "no-closestream", INFO,
                f"{how} without a Close message; audio for text not yet flushed is lost "
                f"unless Flush was sent; {send} to end a text-to-speech stream ({drain}).",
                frames=frames, time=time))
        elif endpoint == ep.LISTEN and _finalize_flushed(dg):
            out.append(Finding(
                "no-closestream", INFO,
                f"{how} without CloseStream; Finalize had flushed the final results, but "
                f"Deepgram's Metadata summary never came; {send} and wait for Metadata before "
                "closing.",
                frames=frames, time=time))
        else:
            wait = ("wait for Metadata (or the server's close)" if known.end_summary == "Metadata"
                    else "wait for the server's close (Flux sends no Metadata: its last Update "
                         "before the close is final)")
            out.append(Finding(
                "no-closestream", WARNING,
                f"{how} without CloseStream while the stream was open; audio Deepgram had not "
                f"transcribed yet is dropped, so the last final transcripts are lost; {send} "
                f"and {wait} before closing.",
                frames=frames, time=time))
    after = dg.audio_after_end
    if end is not None and after.count and endpoint in ep.STT:
        what = ("the empty binary frame" if end.type == "empty binary frame" else end.type)
        treated = (", which Deepgram treats as end of stream" if end.type == "empty binary frame"
                   else "")
        out.append(Finding(
            "audio-after-closestream", WARNING,
            f"{plural(after.count, 'audio message')} ({after.bytes} bytes) sent after "
            f"{what} (frame {end.frame} at {clock(end.time)}){treated}, first No. "
            f"{after.first_frame}; Deepgram does not transcribe audio sent after the end of "
            "the stream; send CloseStream only after the last audio.",
            frames=[end.frame] + list(after.frames), time=after.first_time,
            details={"count": after.count, "bytes": after.bytes, "end_frame": end.frame}))
    # Only endpoints with a closing summary (/v1/listen Metadata, /v2/speak
    # SessionMetadata) can be closed "before" it; Flux and /v1/speak send none.
    summary_seen = (dg.metadata if known.end_summary == "Metadata" else dg.protocol.end_summary)
    if (known.end_summary is not None and end is not None and end.type == known.end_message
            and summary_seen is None and client_closed and close.client.time >= end.time):
        wait = close.client.time - end.time
        results = "final results and " if endpoint == ep.LISTEN else ""
        out.append(Finding(
            "closed-before-metadata", WARNING,
            f"The client sent {end.type} (frame {end.frame}) but closed the socket {wait:.2f} s "
            f"later (frame {close.client.frame}) before Deepgram's {results}{known.end_summary} "
            f"arrived; wait for {known.end_summary} or the server's close after {end.type}.",
            frames=[end.frame, close.client.frame], time=close.client.time,
            details={"seconds": round(wait, 3), "summary": known.end_summary}))
    return out


# --- what Deepgram received -----------------------------------------------------------

def _first_payload_clause(session: Session, audio: AudioSummary) -> str:
    first = audio.first_payload
    if first is None:
        return "the client sent no audio"
    enc = query_value(session.handshake.query, "encoding")
    setting = f"encoding={enc}" if enc else "no encoding parameter"
    return f"the first audio payload (frame {first.frame}) is {format_name(audio)}, sent with {setting}"


@rule
def deepgram_metadata(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    dg, audio = session.deepgram, session.audio
    meta = dg.metadata if dg is not None else None
    if (meta is None or audio is None or session_endpoint(session) in ep.TTS
            or not is_deepgram(session)):
        return []
    chunks, nbytes = audio.pace.chunks, audio.pace.bytes
    details = {"sha256": meta.sha256, "duration": meta.duration,
               "audio_chunks": chunks, "audio_bytes": nbytes}
    where = f"Deepgram's Metadata (frame {meta.frame} at {clock(meta.time)})"
    if meta.sha256 == EMPTY_SHA256:
        sent = (f", although the client sent {plural(chunks, 'audio message')} ({nbytes} bytes)"
                if chunks else "; the client sent no audio on this connection")
        return [Finding("no-audio-received", ERROR,
                        f"{where} carries the SHA-256 of empty input: no audio reached Deepgram"
                        f"{sent}; send audio on this socket only after it has opened.",
                        frames=[meta.frame], time=meta.time, details=details)]
    if meta.duration == 0 and meta.sha256:
        return [Finding("audio-undecodable", ERROR,
                        f"{where} reports 0 s of audio although bytes arrived (sha256 "
                        f"{meta.sha256[:12]}…): Deepgram could not decode them; "
                        f"{_first_payload_clause(session, audio)}; raw audio needs encoding and "
                        "sample_rate, containerised audio needs no encoding.",
                        frames=[meta.frame], time=meta.time, details=details)]
    return []


def _container_matches(audio: AudioSummary, encoding: str) -> bool:
    """Whether `encoding` decodes this container's payload anyway (or names it)."""
    fmt = audio.format
    if fmt == "wav":
        return audio.wav is not None and audio.wav.encoding == encoding
    return (fmt, encoding) in {("amr", "amr-nb"), ("amr-wb", "amr-wb")}


# The encoding values that name a container: setting them for that container is right.
_NAMED_CONTAINERS = {("flac", "flac"), ("ogg", "ogg-opus")}


@rule
def deepgram_audio_format(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    audio = session.audio
    if session_endpoint(session) not in ep.STT or session.midstream or audio is None:
        return []
    first = audio.first_payload
    if first is None:
        return []
    encoding = query_value(session.handshake.query, "encoding")
    name = format_name(audio)
    details = {"format": audio.format, "codec": audio.codec, "encoding": encoding,
               "first_bytes": first.head}
    where = f"The first audio payload (frame {first.frame}, {first.size} bytes)"
    if audio.container and encoding:
        if (audio.format, encoding) in _NAMED_CONTAINERS:
            return []
        matches = _container_matches(audio, encoding)
        consequence = ("it still decodes because the formats match, but the header is decoded "
                       "as audio" if matches else "Deepgram then decodes the container bytes as "
                       f"raw {encoding} and gets noise or nothing")
        return [Finding("container-with-encoding", WARNING if matches else ERROR,
                        f"{where} is {name} but the request sets encoding={encoding}: "
                        f"{consequence}; remove encoding (and sample_rate) for containerised audio.",
                        frames=[first.frame], time=first.time, details=details)]
    if not audio.container and not encoding:
        return [Finding("raw-without-encoding", ERROR,
                        f"{where} has no container header (starts {first.head[:16]}) "
                        "and the request has no encoding parameter; Deepgram cannot decode "
                        "headerless audio without encoding and sample_rate (e.g. "
                        "encoding=linear16&sample_rate=16000).",
                        frames=[first.frame], time=first.time, details=details)]
    return []


@rule
def deepgram_pace(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    audio = session.audio
    if session_endpoint(session) not in (ep.LISTEN, ep.LISTEN_V2, ep.AGENT) or audio is None:
        return []
    pace = audio.pace
    rtf = pace.realtime_factor
    out = []
    frames = [f for f in (pace.first_frame, pace.last_frame) if f is not None]
    rate = audio.sample_rate
    if rtf is not None and pace.seconds is not None:
        wall = pace.seconds / rtf if rtf else None
        details = {"realtime_factor": rtf, "max_window_rtf": pace.max_window_rtf,
                   "min_window_rtf": pace.min_window_rtf,
                   "audio_seconds": pace.seconds,
                   "wall_seconds": None if wall is None else round(wall, 3),
                   "full_windows": pace.full_windows}
        if au.is_faster_than_realtime(pace):
            peak = pace.max_window_rtf
            peak_text = f"; fastest 10 s window {peak:.2f}x" if peak is not None else ""
            out.append(Finding(
                "faster-than-realtime", WARNING,
                f"Audio was sent at {rtf:.2f}x real time ({pace.seconds:.1f} s of audio in "
                f"{wall:.1f} s{peak_text}); Deepgram expects at most "
                f"{au.MAX_REALTIME_FACTOR}x: pace the stream in real time, and check "
                f"sample_rate={rate} is the audio's real rate (too low a rate looks fast).",
                frames=frames, time=pace.first_time, details=details))
        elif au.is_slower_than_realtime(pace):
            out.append(Finding(
                "slower-than-realtime", WARNING,
                f"Audio was sent slower than real time throughout: {rtf:.2f}x overall and every "
                f"one of the {pace.full_windows} complete 10 s windows below 1.0 (slowest "
                f"{pace.min_window_rtf or 0:.2f}x); results will lag behind speech: check "
                f"the sender loop, and that sample_rate={rate} is the audio's real rate (too "
                "high a rate looks slow).",
                frames=frames, time=pace.first_time, details=details))
    verdict = au.chunk_verdict(pace)
    chunk = pace.chunk_ms
    if verdict and chunk is not None:
        effect = ("small chunks multiply per-message overhead" if verdict == "small"
                  else "large chunks add their own length to every result's latency")
        out.append(Finding(
            "chunk-size", INFO if verdict == "small" else WARNING,
            f"Audio chunks are typically {chunk.median:.0f} ms (min {chunk.min:.0f}, max "
            f"{chunk.max:.0f} ms over {plural(pace.chunks, 'chunk')}); Deepgram recommends "
            f"{au.CHUNK_MS_MIN:.0f}-{au.CHUNK_MS_MAX:.0f} ms ("
            + ("80 ms chunks are strongly recommended for Flux, dg:/docs/flux/quickstart"
               if session_endpoint(session) == ep.LISTEN_V2 else "100 ms is a good default")
            + f"): {effect}.",
            frames=frames[:1], time=pace.first_time,
            details={"chunk_ms": chunk.to_json(), "chunks": pace.chunks}))
    return out


# --- close codes --------------------------------------------------------------------

@rule
def deepgram_close(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    if not is_deepgram(session) or session.deepgram is None:
        return []
    x = session.deepgram.close_explanation
    if x is None:
        return _uncatalogued_server_close(session, session.deepgram)
    if x.entry.name == "normal":
        return []
    evidence = f"; {x.evidence}" if x.evidence else ""
    details = {"code": x.code, "name": x.entry.name, "reason": x.reason,
               "explanation": x.entry.explanation, "steps": list(x.entry.steps),
               "doc": x.entry.doc, "link": x.link, "pattern": x.pattern, **x.details}
    out = [Finding("deepgram-close", ERROR,
                   f"Deepgram closed the stream with {x.label} at frame {x.frame} "
                   f"({clock(x.time)}): {x.entry.title}{evidence}. See {x.link}",
                   frames=[x.frame], time=x.time, details=details)]
    hs = session.handshake
    if x.pattern == WAITED_FOR_SERVER:
        since = x.details["seconds_after_open"]
        after = f" {since:.1f} s after the 101" if since is not None else ""
        opened = f" (frame {hs.response_frame})" if hs.response_frame is not None else ""
        out.append(Finding(
            "waited-for-server", ERROR,
            f"The client never sent a frame: Deepgram closed the stream with {x.label}{after}"
            f"{opened}; the client was waiting for the server to speak first, but Deepgram sends "
            "nothing until it receives audio: start sending audio as soon as the connection opens.",
            frames=[f for f in (hs.response_frame, x.frame) if f is not None], time=x.time,
            details={"seconds_after_open": since}))
    elif x.pattern == KEEPALIVE_WITHOUT_AUDIO:
        n, first = x.details["keepalives"], x.details["first_keepalive_frame"]
        out.append(Finding(
            "keepalive-without-audio", ERROR,
            f"The client sent only KeepAlive ({n}, first No. {first})"
            f" and never audio before Deepgram closed with {x.label} at frame {x.frame}; KeepAlive "
            "holds a stream open only after audio has been sent: send audio (or silence) within "
            "10 s of opening.",
            frames=[f for f in (first, x.frame) if f is not None],
            time=x.time, details={"keepalives": n}))
    return out


# Endpoints that report errors in-band (Error messages), not as close payloads.
IN_BAND_ERRORS = frozenset({ep.LISTEN_V2, ep.SPEAK_V2, ep.AGENT})


def _uncatalogued_server_close(session: Session, dg: DeepgramSummary) -> list[Finding]:
    # The generic close-code rule leaves Deepgram endpoints to this module, so a
    # server close outside the catalogue must still be reported here.
    close = session.close.server
    if close is None or close.code in (None, 1000, 1001):
        return []
    reason = f' "{shorten(close.reason, 120)}"' if close.reason else ""
    errors = dg.server_errors
    if session_endpoint(session) in IN_BAND_ERRORS and errors.count and errors.first_time <= close.time:
        # Flux, Flux TTS and the Agent report errors as Error messages; which close code
        # follows one is unconfirmed, so the code itself says nothing more.
        return [Finding("deepgram-close", INFO,
                        f"Deepgram closed the stream with {close.code}{reason} at frame "
                        f"{close.frame} after its Error message (frame {errors.first_frame}); the "
                        "close code that follows an Error is unconfirmed, the Error says why.",
                        frames=[errors.first_frame, close.frame], time=close.time,
                        details={"code": close.code, "name": None, "reason": close.reason})]
    rid = dg.request_id  # Metadata's, the server's first message's, or the header
    support = f"give Deepgram support the request id {rid}" if rid else "contact Deepgram support"
    return [Finding("deepgram-close", WARNING,
                    f"Deepgram closed the stream with {close.code}{reason} at frame {close.frame} "
                    f"({clock(close.time)}), a code/reason outside its documented catalogue; "
                    f"if it repeats, {support}.",
                    frames=[close.frame], time=close.time,
                    details={"code": close.code, "name": None, "reason": close.reason})]


@rule
def deepgram_server_messages(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    if (dg := _deepgram(session)) is None:
        return []
    out = []
    for events, fid, severity, what in ((dg.server_errors, "server-error", ERROR, "an Error"),
                                        (dg.server_warnings, "server-warning", WARNING,
                                         "a Warning")):
        for item in events.items[:5]:
            code = f" (code {item['code']})" if item["code"] is not None else ""
            text = item["description"] or "no description"
            known = explain_code(session, "error" if fid == "server-error" else "warning",
                                 item["code"])
            out.append(Finding(fid, severity,
                               f"Deepgram sent {what} message at frame {item['frame']} "
                               f"({clock(item['time'])}): \"{shorten(text, 200)}\"{code}"
                               f"{code_clause(session, known, item['code'])}.",
                               frames=[item["frame"]], time=item["time"],
                               details={"code": item["code"], "description": text,
                                        "count": events.count,
                                        "meaning": known.meaning if known else None,
                                        "step": known.step if known else None,
                                        "documented": known is not None,
                                        "session_ends": known.fatal if known else None}))
    return out

