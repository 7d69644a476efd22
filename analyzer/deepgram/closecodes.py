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
from dataclasses import dataclass
from typing import Optional

from . import endpoints as ep

STT_DOC = "https://developers.deepgram.com/docs/stt-troubleshooting-websocket-data-and-net-errors"
TTS_DOC = "https://developers.deepgram.com/docs/tts-troubleshooting-websocket-net-and-data-errors"
STT, TTS = "stt", "tts"


@dataclass(frozen=True)
class CloseCodeEntry:
    family: str  # "stt" (listen, Flux, agent) | "tts" (speak)
    code: int
    name: str  # "NET-0001"; "normal" for 1000
    title: str  # a few words, used inside sentences
    explanation: str
    steps: tuple[str, ...]
    doc: str
    short_link: Optional[str] = None
    legacy: bool = False
    source: str = "seed"

    @property
    def token(self) -> Optional[str]:
        return None if self.name == "normal" else normalise(self.name)

    def to_json(self) -> dict:
        return {"family": self.family, "code": self.code, "name": self.name, "title": self.title,
                "explanation": self.explanation, "steps": list(self.steps), "doc": self.doc,
                "short_link": self.short_link, "legacy": self.legacy, "source": self.source}


def normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_DATA_0000_STEPS = (
    "Check the data being sent is valid audio.",
    "Check the audio data is not empty.",
    "If the audio data is valid, check whether the audio being sent is raw or containerized.",
    "Write the audio data to a file to make sure it contains the expected audio and can be "
    "played back.",
    "Ensure Encoding and Sample Rate parameters are set correctly.",
    "See Audio Format For Live Streaming for more information.",
)
_DATA_0000_EXPLANATION = ("The payload cannot be decoded as audio. The payload either is not "
                          "audio data or is a codec unsupported by Deepgram.")
_TTS_NET_STEPS = ("Retry your request.",
                  "Check Deepgram status to see if there are any ongoing issues.",
                  "If Deepgram is operational, contact Support for assistance.")

CATALOGUE: tuple[CloseCodeEntry, ...] = (
    CloseCodeEntry(
        STT, 1000, "normal", "normal closure",
        "The stream ended normally: after CloseStream Deepgram sent its remaining results "
        "and the summary Metadata, then closed.", (), STT_DOC),
    CloseCodeEntry(
        STT, 1008, "DATA-0000", "the audio could not be decoded",
        _DATA_0000_EXPLANATION, _DATA_0000_STEPS, STT_DOC),
    CloseCodeEntry(
        STT, 1002, "DATA-0000", "the audio could not be decoded",
        _DATA_0000_EXPLANATION + " (Older Deepgram deployments send this with code 1002.)",
        _DATA_0000_STEPS, STT_DOC, legacy=True),
    CloseCodeEntry(
        STT, 1011, "NET-0000", "Deepgram sent no response within its timeout",
        "The service has not transmitted a Text frame to the client within the timeout window. "
        "This may indicate an internal issue with Deepgram's systems, or Deepgram may have not "
        "received enough audio data to transcribe a frame.",
        ("This indicates an internal server error.",
         "Retry your request.",
         "Check Deepgram status to see if there are any ongoing issues.",
         "If Deepgram is operational, contact Support for assistance."),
        STT_DOC, "https://dpgr.am/net0000"),
    CloseCodeEntry(
        STT, 1011, "NET-0001", "no audio or text message from the client for 10 s",
        "The service has not received a Binary or Text frame from the client within the timeout "
        "window. This may indicate an internal issue with Deepgram's systems, the client's "
        "systems, or the network connecting them.",
        ("Ensure audio is sent within 10 seconds of opening the connection.",
         "You can send silent audio to keep the connection alive.",
         "Using KeepAlive messages alone will not prevent closure; you must send at least one "
         "audio message.",
         "Be sure to send a Close Stream message when done.",
         "Test your network with cURL and Deepgram-hosted audio. See Generating Transcripts "
         "from the Terminal for more information.",
         "Use a tool like Wireshark to confirm audio is leaving your network."),
        STT_DOC, "https://dpgr.am/net0001"),

    CloseCodeEntry(
        TTS, 1000, "normal", "normal closure",
        "The stream ended normally (after a Close message or a client close).", (), TTS_DOC,
        source="protocol-reference"),
    CloseCodeEntry(
        TTS, 1003, "MESSAGE-0000", "unsupported frame type",
        "Deepgram received a frame type the text-to-speech socket does not support: it only "
        "accepts text (JSON) messages.",
        ("Send Speak, Flush, Clear and Close as text frames, never as binary frames.",
         "Check the client does not write audio or raw bytes to the text-to-speech socket."),
        TTS_DOC, source="protocol-reference"),
    CloseCodeEntry(
        TTS, 1008, "DATA-0000", "invalid command",
        "Deepgram could not interpret a message as a text-to-speech command.",
        ('Send only the documented messages: {"type":"Speak","text":"..."}, Flush, Clear, Close.',
         "Check the JSON is well formed and the type is spelt exactly."),
        TTS_DOC, source="protocol-reference"),
    CloseCodeEntry(
        TTS, 1008, "DATA-0001", "character rate exceeded",
        "Text arrived faster than Deepgram's character rate limit allows.",
        ("Send text as it is produced instead of in large bursts.",
         "Check the text-to-speech rate limits that apply to the project."),
        TTS_DOC, source="protocol-reference"),
    CloseCodeEntry(
        TTS, 1009, "BIG-0000", "message too large",
        "A message was larger than Deepgram accepts.",
        ("Split long text across several Speak messages.",),
        TTS_DOC, source="protocol-reference"),
    CloseCodeEntry(
        TTS, 1009, "BIG-0001", "too many characters",
        "More characters were sent than Deepgram accepts (in one message or buffered before "
        "a Flush).",
        ("Split long text across several Speak messages and Flush between them.",),
        TTS_DOC, source="protocol-reference"),
    CloseCodeEntry(
        TTS, 1011, "NET-0000", "internal error",
        "Deepgram had an internal error.", _TTS_NET_STEPS, TTS_DOC, source="protocol-reference"),
    CloseCodeEntry(
        TTS, 1011, "NET-0001", "receive failed",
        "Deepgram failed to receive a message from the client.",
        ("Check the client's network path and that it does not close or stall the socket "
         "while sending.",) + _TTS_NET_STEPS, TTS_DOC, source="protocol-reference"),
    CloseCodeEntry(
        TTS, 1011, "NET-0002", "send failed",
        "Deepgram failed to send to the client.",
        ("Make sure the client keeps reading audio from the socket: a client that stops "
         "reading makes Deepgram's sends fail.",) + _TTS_NET_STEPS,
        TTS_DOC, source="protocol-reference"),
    CloseCodeEntry(
        TTS, 1011, "NET-0003", "time limit reached",
        "The connection reached Deepgram's time limit for a text-to-speech stream.",
        ("Open a new connection for further text; reconnect when a long session is closed.",),
        TTS_DOC, source="protocol-reference"),
)

_LINK_RE = re.compile(r"https?://[^\s\"')>]+")


def families_for(endpoint: str) -> tuple[str, ...]:
    if endpoint == ep.SPEAK:
        return (TTS,)
    if endpoint in (ep.LISTEN, ep.LISTEN_V2, ep.AGENT):
        return (STT,)
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
