"""Which Deepgram streaming API a WebSocket session talks to, from its request path.

Self-hosted deployments and proxies use other hosts, so only the path decides.
"""
from __future__ import annotations

from typing import Optional

LISTEN = "listen"  # /v1/listen: live speech-to-text (Nova)
LISTEN_V2 = "listen-v2"  # /v2/listen: Flux, turn-based speech-to-text
SPEAK = "speak"  # /v1/speak: text-to-speech
AGENT = "agent"  # /v1/agent/converse (older /agent): Voice Agent
OTHER = "other"

STT = frozenset({LISTEN, LISTEN_V2})
DEEPGRAM = frozenset({LISTEN, LISTEN_V2, SPEAK, AGENT})

_BY_PATH = {
    "/v1/listen": LISTEN,
    "/v2/listen": LISTEN_V2,
    "/v1/speak": SPEAK,
    "/v1/agent/converse": AGENT,
    "/agent": AGENT,
}
# Versioned paths are distinctive enough to recognise behind a reverse-proxy prefix
# (e.g. /deepgram/v1/listen); the bare "/agent" is not.
_SUFFIX_MATCH = ("/v1/listen", "/v2/listen", "/v1/speak", "/v1/agent/converse")

# Server message types that only one API sends: used when the handshake is not in
# the capture (mid-stream sessions) and the path is unknown.
_BY_SERVER_TYPE = {
    "Results": LISTEN, "UtteranceEnd": LISTEN, "SpeechStarted": LISTEN,
    "TurnInfo": LISTEN_V2, "Connected": LISTEN_V2,
    "ConfigureSuccess": LISTEN_V2, "ConfigureFailure": LISTEN_V2,
    "Flushed": SPEAK, "Cleared": SPEAK,
    "Welcome": AGENT, "SettingsApplied": AGENT, "ConversationText": AGENT,
    "AgentAudioDone": AGENT, "UserStartedSpeaking": AGENT,
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


def is_deepgram_host(host: Optional[str]) -> bool:
    if not host:
        return False
    name = host.strip().lower()
    if name.startswith("["):  # [v6]:port carries no name
        return False
    name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    return name == "deepgram.com" or name.endswith(".deepgram.com")
