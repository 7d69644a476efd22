"""Catalogue of the close codes Deepgram sends, with what to do about each.

A close is matched on its code AND a token in its reason payload: real reasons are
sentences such as "Deepgram did not receive audio data or a text message within the
timeout window. See https://dpgr.am/net0001", so the token is looked for anywhere,
ignoring case and punctuation ("NET-0001", "net0001").  Text-to-speech reuses some
tokens with other meanings, so the endpoint picks the family.

STT explanations and steps follow Deepgram's "STT Troubleshooting WebSocket, NET, and
DATA Errors" guide (the seed document); the TTS entries follow the protocol reference
table (source "protocol-reference"), as that guide's bullets were not available.
"""
from __future__ import annotations

import re
from typing import Optional

from . import endpoints as ep
from .endpoints import listen_v1, speak_v1
from .endpoints.spec import STT_DOC, TTS_DOC, CloseCode, normalise  # noqa: F401 (re-exported)

STT, TTS = "stt", "tts"
CloseCodeEntry = CloseCode

# The documented close codes live with their endpoint (listen_v1, speak_v1); Flux STT,
# Flux TTS and the Agent report errors as Error messages, not close-frame payloads, so
# they have no entries here (reference, "Close codes and in-band errors").
CATALOGUE: tuple[CloseCode, ...] = listen_v1.CLOSE_CODES + speak_v1.CLOSE_CODES

_LINK_RE = re.compile(r"https?://[^\s\"')>]+")


def families_for(endpoint: str) -> tuple[str, ...]:
    if endpoint == ep.SPEAK:
        return (TTS,)
    if endpoint == ep.LISTEN:
        return (STT,)
    if endpoint in ep.DEEPGRAM:
        return ()  # in-band Error messages instead of close payloads
    return (STT, TTS)  # unknown path (self-hosted, proxied): live STT is the common case


def match_close(code: Optional[int], reason: Optional[str], endpoint: str) -> Optional[CloseCodeEntry]:
    """The catalogue entry for a server close frame, or None if it is not Deepgram's."""
    if code is None:
        return None
    norm = normalise(reason or "")
    for family in families_for(endpoint):
        for entry in CATALOGUE:
            if entry.family != family or entry.code != code:
                continue
            if entry.token is None or entry.token in norm:
                return entry
    return None


def reason_link(reason: Optional[str]) -> Optional[str]:
    """A URL quoted in the reason payload (Deepgram's dpgr.am short links)."""
    m = _LINK_RE.search(reason or "")
    return m.group(0).rstrip(".,;") if m else None
