"""Deepgram rules that depend on what one endpoint promises (analyzer/deepgram/endpoints/).

Who speaks first, keep-alive on an endpoint that has none, the Voice Agent's Settings
order, the text-to-speech Flush limit, Configure and its replies, a status-less close
that was not the end of a stream.  Each reads the typed session model and asks the
endpoint module for the rule; texts say "unconfirmed" where the reference does.
"""
from __future__ import annotations

from typing import Iterable

from ..deepgram import endpoints as ep
from ..deepgram.closeexplain import endpoint_knowledge, format_name, is_deepgram, session_endpoint
from ..deepgram.codes import code_clause, explain_code
from ..deepgram.endpoints import agent, listen_v1, speak_v1
from ..deepgram.fmt import plural
from ..timefmt import clock
from ..model import ERROR, INFO, WARNING, Finding, Session
from .registry import RuleContext, rule


# Regional /v1/listen hosts (dg:/docs/configure): Configure is not offered there yet.
REGIONAL_HOSTS = frozenset({"api.eu.deepgram.com", "api.au.deepgram.com", "api.in.deepgram.com"})


def _opened(session: Session) -> bool:
    return session.websocket or session.handshake.status == 101


def _frames(*frames) -> list:
    return [f for f in frames if f is not None]


@rule
def deepgram_greeting(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    """Who spoke first, against the endpoint's greeting (Connected / Welcome at once)."""
    dg = session.deepgram
    known = ep.knowledge(session_endpoint(session))
    if (dg is None or known is None or known.greeting is None or not known.greeting_confirmed
            or session.midstream or not _opened(session)):
        return []
    greeting = dg.protocol.first_server_text
    first_client = dg.client_data
    out = []
    if greeting is not None and greeting.type != known.greeting:
        out.append(Finding(
            "no-greeting", INFO,
            f"The first server message was {greeting.type} (frame {greeting.frame}), not "
            f"{known.greeting}, which {known.path} sends at once on connect.",
            frames=[greeting.frame], time=greeting.time,
            details={"expected": known.greeting, "first": greeting.type}))
    elif greeting is None and (first_client.count or session.close.server is not None):
        out.append(Finding(
            "no-greeting", INFO,
            f"No {known.greeting} message was seen, although {known.path} sends it at once on "
            "connect: the server may not be Deepgram's, or a proxy answers instead.",
            frames=_frames(session.handshake.response_frame), time=session.handshake.response_time,
            details={"expected": known.greeting, "first": None}))
    if (known.id == ep.AGENT and first_client.first_frame is not None
            and (greeting is None or first_client.first_time < greeting.time)):
        # dg:/docs/voice-agent-message-flow: the client sends nothing before Welcome.
        where = (f" before the Agent's Welcome (frame {greeting.frame})" if greeting
                 else " and no Welcome came")
        out.append(Finding(
            "sent-before-welcome", WARNING,
            f"The client sent its first message (frame {first_client.first_frame} at "
            f"{clock(first_client.first_time)}){where}; the Voice Agent sends Welcome at once and "
            "the client should send nothing before it: wait for Welcome, then send Settings.",
            frames=_frames(first_client.first_frame, greeting.frame if greeting else None),
            time=first_client.first_time))
    return out


@rule
def deepgram_keepalive_fit(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    """KeepAlive sent where the endpoint has no KeepAlive message."""
    dg = session.deepgram
    endpoint, known = endpoint_knowledge(session)
    if dg is None or known is None or not dg.keepalive.count or known.keepalive_message:
        return []
    ka = dg.keepalive
    if endpoint == ep.LISTEN_V2:
        close = session.close.server
        killed = ""
        if close is not None and close.code is None and close.time >= ka.first_time \
                and dg.stream_end is None:
            killed = (f"; here the server closed the socket without a status code (frame "
                      f"{close.frame}, {close.time - ka.first_time:.2f} s later), as users saw")
        return [Finding(
            "keepalive-on-flux", ERROR,
            f"The client sent {plural(ka.count, 'JSON KeepAlive message')} (first No. "
            f"{ka.first_frame} at {clock(ka.first_time)}) to Flux, which has no KeepAlive message "
            f"(spec); a JSON KeepAlive killed Flux sockets (close 1005, py#649){killed}: keep a "
            "Flux connection alive with WebSocket pings or by sending audio (silence).",
            frames=_frames(ka.first_frame, close.frame if killed else None), time=ka.first_time,
            details={"count": ka.count, "closed_without_status": bool(killed)})]
    return [Finding(
        "keepalive-not-applicable", INFO,
        f"The client sent {plural(ka.count, 'KeepAlive message')} (first No. {ka.first_frame}) "
        f"to {known.path}, where KeepAlive does not apply ({known.keepalive_rule})",
        frames=[ka.first_frame], time=ka.first_time, details={"count": ka.count})]


@rule
def deepgram_agent_settings(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    """Voice Agent order: Welcome, Settings, SettingsApplied, then audio; Settings once."""
    dg = session.deepgram
    if dg is None or session_endpoint(session) != ep.AGENT or not _opened(session) \
            or session.midstream:
        return []
    p = dg.protocol
    out = []
    early = p.audio_before_settings_applied
    settings = p.settings
    if early.count:
        before_settings = settings.first_time is None or early.first_time < settings.first_time
        what = "Settings" if before_settings else "SettingsApplied"
        refused = [i for i in dg.server_errors.items
                   if i.get("code") == "NON_SETTINGS_MESSAGE_BEFORE_SETTINGS"]
        answer = (f"; Deepgram answered with Error NON_SETTINGS_MESSAGE_BEFORE_SETTINGS (frame "
                  f"{refused[0]['frame']})" if refused else "")
        out.append(Finding(
            "audio-before-settings", ERROR if before_settings else WARNING,
            f"The client sent {plural(early.count, 'audio message')} ({early.bytes} bytes, first "
            f"No. {early.first_frame} at {clock(early.first_time)}) before {what}{answer}; the "
            "Voice Agent takes audio only after SettingsApplied: send Settings first, wait for "
            "SettingsApplied, then stream audio.",
            frames=_frames(early.first_frame, refused[0]["frame"] if refused else None),
            time=early.first_time,
            details={"count": early.count, "bytes": early.bytes, "before": what}))
    first = p.first_client_message
    if first is not None and first.type not in ("Settings", "audio"):
        out.append(Finding(
            "first-message-not-settings", ERROR,
            f"The client's first message was {first.type} (frame {first.frame}), not Settings; "
            "the Voice Agent requires Settings first (Error NON_SETTINGS_MESSAGE_BEFORE_SETTINGS).",
            frames=[first.frame], time=first.time, details={"first": first.type}))
    if settings.count >= 2:
        second = settings.frames[1] if len(settings.frames) > 1 else settings.last_frame
        out.append(Finding(
            "second-settings", ERROR,
            f"The client sent Settings {settings.count} times (first No. {settings.first_frame}, "
            f"again No. {second}); Settings is accepted once (Error SETTINGS_ALREADY_APPLIED): "
            "change the running agent with UpdateListen, UpdateThink, UpdateSpeak or UpdatePrompt.",
            frames=_frames(settings.first_frame, second), time=settings.first_time,
            details={"count": settings.count}))
    if settings.count and dg.settings_applied is None and not dg.server_errors.count:
        out.append(Finding(
            "no-settings-applied", WARNING,
            f"The client sent Settings (frame {settings.first_frame} at "
            f"{clock(settings.first_time)}) but no SettingsApplied came before the session "
            "ended; the agent does not start listening until it does: check the Settings "
            "message and the network path for the reply.",
            frames=[settings.first_frame], time=settings.first_time))
    return out


@rule
def deepgram_flush_limit(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    """/v1/speak: at most 20 Flush per 60 s (docs-repo tts-ws-flush.mdx)."""
    dg = session.deepgram
    if dg is None or session_endpoint(session) != ep.SPEAK or dg.protocol.flush_over_limit is None:
        return []
    p = dg.protocol
    over = p.flush_over_limit
    warned = [i for i in dg.server_warnings.items if i.get("code") == "EXCESSIVE_FLUSH"]
    answer = (f"; Deepgram answered with {plural(len(warned), 'EXCESSIVE_FLUSH warning')} (first "
              f"frame {warned[0]['frame']}) and does not flush those" if warned else "")
    return [Finding(
        "flush-limit", WARNING,
        f"The client sent {p.flush_peak_per_minute} Flush messages within 60 s (No. "
        f"{speak_v1.FLUSH_LIMIT + 1} of them at frame {over.frame}, {clock(over.time)}); Deepgram allows "
        f"{speak_v1.FLUSH_LIMIT} per {speak_v1.FLUSH_WINDOW:.0f} s{answer}: Flush only at the end "
        "of a sentence or turn.",
        frames=_frames(over.frame, warned[0]["frame"] if warned else None), time=over.time,
        details={"peak_per_minute": p.flush_peak_per_minute, "limit": speak_v1.FLUSH_LIMIT,
                 "warnings": len(warned), "flushes": p.flush.count})]


@rule
def deepgram_configure(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    """Configure replies, judged by what the endpoint promised at the capture's date."""
    dg = session.deepgram
    endpoint = session_endpoint(session)
    if dg is None or not dg.protocol.configure.count or endpoint not in (
            ep.LISTEN, ep.LISTEN_V2, ep.SPEAK_V2):
        return []
    p = dg.protocol
    sent = p.configure
    out = []
    for item in p.configure_replies.items:
        if item.get("type") != "ConfigureFailure":
            continue
        entry = explain_code(session, "configure", item.get("code"))
        code = f" (code {item['code']})" if item.get("code") else ""
        out.append(Finding(
            "configure-failed", WARNING,
            f"Deepgram refused a Configure with ConfigureFailure at frame {item['frame']}{code}"
            f"{code_clause(session, entry, item.get('code'))}; the stream keeps its previous "
            "settings.",
            frames=[item["frame"]], time=item["time"], details={"code": item.get("code")}))
    replies = p.configure_replies.count
    promised = endpoint != ep.LISTEN or sent.first_time >= listen_v1.CONFIGURE_REPLIES_SINCE
    close = session.close
    ended = close.server is not None or close.client is not None or close.tcp_end in ("fin", "rst")
    if promised and replies < sent.count and ended:
        since = (" (every Configure gets exactly one ConfigureSuccess or ConfigureFailure "
                 "since 2026-10-19, cl:2026/10/19)" if endpoint == ep.LISTEN else
                 " (the endpoint answers each Configure with ConfigureSuccess or "
                 "ConfigureFailure)")
        out.append(Finding(
            "configure-unanswered", WARNING,
            f"The client sent {plural(sent.count, 'Configure message')} (first No. "
            f"{sent.first_frame}) and got {plural(replies, 'reply', 'replies')}{since}; a "
            "missing reply means the Configure was lost or not applied.",
            frames=[sent.first_frame], time=sent.first_time,
            details={"configure": sent.count, "replies": replies}))
    host = (session.handshake.request_header("host") or "").lower().split(":")[0]
    if endpoint == ep.LISTEN and host in REGIONAL_HOSTS:
        out.append(Finding(
            "configure-regional", WARNING,
            f"Configure was sent to {host}; Deepgram offers Configure on the global endpoint only "
            "(not yet EU/AU/IN, dg:/docs/configure).",
            frames=[sent.first_frame], time=sent.first_time))
    return out


@rule
def deepgram_unexpected_statusless_close(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    """A close frame without status is Flux's normal end only after CloseStream."""
    dg = session.deepgram
    endpoint, known = endpoint_knowledge(session)
    close = session.close.server
    if (dg is None or known is None or close is None or close.code is not None
            or None not in known.normal_closes or dg.stream_end is not None
            or dg.server_errors.count or (endpoint == ep.LISTEN_V2 and dg.keepalive.count)):
        return []
    return [Finding(
        "statusless-close", WARNING,
        f"Deepgram closed the stream without a status code at frame {close.frame} "
        f"({clock(close.time)}) although the client had not sent {known.end_message}; "
        f"{known.path} closes that way at the end of a stream, so this was not one: check what "
        "the client sent last.",
        frames=[close.frame], time=close.time)]


@rule
def deepgram_sequence_gap(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    """Flux numbers every server message (sequence_id, 0-based): a gap is a lost message."""
    dg = session.deepgram
    if dg is None or not dg.protocol.sequence_gaps.count or session.midstream:
        return []
    gaps = dg.protocol.sequence_gaps
    first = gaps.items[0]
    return [Finding(
        "sequence-gap", WARNING,
        f"Flux's server messages skip sequence_id {first['expected']} (frame {first['frame']} "
        f"carries {first['got']}){'' if gaps.count == 1 else f' and {gaps.count - 1} more times'}; "
        "Flux numbers every server message from 0 (spec), so a message was lost from the "
        "capture (look for TCP holes) or was not parsed.",
        frames=list(gaps.frames), time=gaps.first_time,
        details={"gaps": gaps.count, "expected": first["expected"], "got": first["got"]})]


@rule
def deepgram_agent_audio_settings(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    """Settings.audio against what the Voice Agent accepts (dg:/docs/voice-agent-settings,
    dg:/docs/voice-agent-tts-models)."""
    dg = session.deepgram
    if dg is None or session_endpoint(session) != ep.AGENT or dg.settings is None:
        return []
    p = dg.protocol
    out = []
    frame, time = dg.settings.frame, dg.settings.time
    enc_in = dg.settings.encoding
    if enc_in is not None and enc_in not in agent.INPUT_ENCODINGS:
        out.append(Finding(
            "settings-invalid", WARNING,
            f"Settings (frame {frame}) declares audio.input encoding {enc_in}, which is not one "
            "of the live encodings the Voice Agent takes (" + ", ".join(
                sorted(agent.INPUT_ENCODINGS)) + ").",
            frames=[frame], time=time, details={"field": "audio.input.encoding", "value": enc_in}))
    enc_out, container = p.settings_output_encoding, p.settings_output_container
    if p.settings_speak_given is False and (
            (enc_out is not None and enc_out not in agent.FLUX_TTS_OUTPUT_ENCODINGS)
            or (container is not None and container != "none")):
        what = (f"encoding {enc_out}" if enc_out not in agent.FLUX_TTS_OUTPUT_ENCODINGS
                else f"container {container}")
        out.append(Finding(
            "settings-invalid", WARNING,
            f"Settings (frame {frame}) asks for audio.output {what} without agent.speak, so the "
            "agent speaks with Flux TTS, which takes only linear16, mulaw or alaw and container "
            "none (others give Error INVALID_SETTINGS).",
            frames=[frame], time=time, details={"field": "audio.output", "value": what}))
    return out


@rule
def deepgram_agent_audio_format(session: Session, ctx: RuleContext) -> Iterable[Finding]:
    """The Voice Agent decodes input as Settings.audio.input declares (default linear16 at
    24000 Hz); bytes that do not match give Error USER_AUDIO_FORMAT."""
    dg, audio = session.deepgram, session.audio
    if (dg is None or audio is None or session_endpoint(session) != ep.AGENT
            or audio.first_payload is None or not audio.container):
        return []
    declared = (dg.settings.encoding if dg.settings is not None else None) or agent.INPUT_DEFAULT[0]
    if declared not in listen_v1.RAW_ENCODINGS:
        return []
    first = audio.first_payload
    return [Finding(
        "agent-audio-format", WARNING,
        f"The first audio payload (frame {first.frame}) is {format_name(audio)}, but the "
        f"Settings declare raw {declared} audio (audio.input"
        + ("" if dg.settings is not None and dg.settings.encoding else ", the default")
        + "); send the raw samples the Settings declare, or declare the format actually "
        "sent (a mismatch gives Error USER_AUDIO_FORMAT).",
        frames=[first.frame], time=first.time,
        details={"format": audio.format, "declared": declared})]
