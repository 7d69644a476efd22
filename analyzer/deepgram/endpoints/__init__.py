"""Which Deepgram streaming API a WebSocket session talks to, and what it knows about it.

`endpoint_for_path` names the endpoint from the request path (self-hosted deployments
and proxies use other hosts, so only the path decides); `knowledge(endpoint)` gives
the per-endpoint module's facts (parameters, messages, end of stream, keep-alive,
close and error codes), each sourced from the protocol reference.
"""
from __future__ import annotations

from typing import Optional

from . import agent, listen_v1, listen_v2, speak_v1, speak_v2
from .spec import Endpoint

LISTEN = "listen"  # /v1/listen: live speech-to-text (Nova)
LISTEN_V2 = "listen-v2"  # /v2/listen: Flux, turn-based speech-to-text
SPEAK = "speak"  # /v1/speak: Aura text-to-speech
SPEAK_V2 = "speak-v2"  # /v2/speak: Flux text-to-speech
AGENT = "agent"  # /v1/agent/converse (older /agent): Voice Agent
OTHER = "other"

STT = frozenset({LISTEN, LISTEN_V2})
TTS = frozenset({SPEAK, SPEAK_V2})
DEEPGRAM = frozenset({LISTEN, LISTEN_V2, SPEAK, SPEAK_V2, AGENT})

ENDPOINTS: dict[str, Endpoint] = {m.ENDPOINT.id: m.ENDPOINT for m in
                                  (listen_v1, listen_v2, speak_v1, speak_v2, agent)}

_BY_PATH = {
    "/v1/listen": LISTEN,
    "/v2/listen": LISTEN_V2,
    "/v1/speak": SPEAK,
    "/v2/speak": SPEAK_V2,
    "/v1/agent/converse": AGENT,
    "/agent": AGENT,  # old path (docs-repo voice-agent-v1-migration.mdx)
}
# Versioned paths are distinctive enough to recognise behind a reverse-proxy prefix
# (e.g. /deepgram/v1/listen); the bare "/agent" is not.
_SUFFIX_MATCH = ("/v1/listen", "/v2/listen", "/v1/speak", "/v2/speak", "/v1/agent/converse")

# Server message types that only one API sends: used when the handshake is not in
# the capture (mid-stream sessions) and the path is unknown.  Connected (Flux STT and
# Flux TTS), ConfigureSuccess/Failure (/v1/listen since Oct 2026, Flux, /v2/speak),
# Metadata, Flushed (both TTS), Warning and Error are shared, so they decide nothing.
_BY_SERVER_TYPE = {
    "Results": LISTEN, "UtteranceEnd": LISTEN,
    "TurnInfo": LISTEN_V2,
    "Cleared": SPEAK,
    "SpeechMetadata": SPEAK_V2, "SessionMetadata": SPEAK_V2, "SpeechInterrupted": SPEAK_V2,
    "Welcome": AGENT, "SettingsApplied": AGENT, "ConversationText": AGENT,
    "AgentAudioDone": AGENT, "UserStartedSpeaking": AGENT, "LatencyReport": AGENT,
}


def endpoint_for_path(path: Optional[str]) -> str:
    if not path:
        return OTHER
    p = path.split("?", 1)[0].rstrip("/").lower() or "/"
    if p in _BY_PATH:
        return _BY_PATH[p]
    for suffix in _SUFFIX_MATCH:
        if p.endswith(suffix):
            return _BY_PATH[suffix]
    return OTHER


def endpoint_for_server_type(msg_type: Optional[str]) -> Optional[str]:
    return _BY_SERVER_TYPE.get(msg_type or "")


def knowledge(endpoint: Optional[str]) -> Optional[Endpoint]:
    """The facts about a Deepgram endpoint; None for "other"."""
    return ENDPOINTS.get(endpoint or "")


def is_deepgram_host(host: Optional[str]) -> bool:
    if not host:
        return False
    name = host.strip().lower()
    if name.startswith("["):  # [v6]:port carries no name
        return False
    name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    return name == "deepgram.com" or name.endswith(".deepgram.com")
