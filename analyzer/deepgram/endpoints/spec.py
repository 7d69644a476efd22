"""The shape of what the analyzer knows about one Deepgram streaming endpoint.

Each endpoint module (listen_v1, listen_v2, speak_v1, speak_v2, agent) fills one
`Endpoint` with facts from the protocol reference (docs/deepgram-protocol.md in the
shared docs); every fact carries its source in a comment there.  Rules, the close
explanations and the diagnosis ask these objects instead of assuming /v1/listen.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

# Parameter kinds.
BOOL, INT, FLOAT, ENUM, TEXT, MS_OR_FALSE = "bool", "int", "float", "enum", "text", "ms-or-false"

STT_DOC = "https://developers.deepgram.com/docs/stt-troubleshooting-websocket-data-and-net-errors"
TTS_DOC = "https://developers.deepgram.com/docs/tts-troubleshooting-websocket-net-and-data-errors"


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    values: Optional[frozenset] = None  # allowed values (ENUM, or INT from a list)
    low: Optional[float] = None  # inclusive range
    high: Optional[float] = None
    default: Optional[str] = None
    required: bool = False
    repeatable: bool = False
    rest_only: bool = False  # documented for the REST API only, not the WebSocket
    note: str = ""  # said after a problem with it (e.g. a documentation contradiction)


@dataclass(frozen=True)
class CloseCode:
    """A documented close-frame code + reason token (the troubleshooting guides)."""
    family: str  # "stt" (/v1/listen) | "tts" (/v1/speak) | "all"
    code: int
    name: str  # "NET-0001"; "normal" for 1000
    title: str  # a few words, used inside sentences
    explanation: str
    steps: tuple[str, ...]
    doc: str
    short_link: Optional[str] = None
    legacy: bool = False
    source: str = "protocol-reference"

    @property
    def token(self) -> Optional[str]:
        return None if self.name == "normal" else normalise(self.name)

    def to_json(self) -> dict:
        return {"family": self.family, "code": self.code, "name": self.name, "title": self.title,
                "explanation": self.explanation, "steps": list(self.steps), "doc": self.doc,
                "short_link": self.short_link, "legacy": self.legacy, "source": self.source}


@dataclass(frozen=True)
class Code:
    """An in-band Error / Warning / ConfigureFailure code and what to do about it."""
    code: str
    meaning: str
    step: str
    fatal: bool = False  # the session ends after it
    unconfirmed: bool = False  # the reference marks the meaning unconfirmed


@dataclass(frozen=True)
class Endpoint:
    id: str  # "listen", "listen-v2", "speak", "speak-v2", "agent"
    path: str
    product: str
    params: tuple[Param, ...]
    client_messages: frozenset
    server_messages: frozenset
    # Who speaks first: the server message sent at once on open, None when the server
    # sends nothing until the client does (/v1/listen).
    greeting: Optional[str]
    greeting_confirmed: bool
    # End of stream: the client message that asks for it, the last server message
    # before the close (None: none documented), the close statuses that end a session
    # normally (None in the set: a close frame without a status code).
    end_message: Optional[str]
    end_summary: Optional[str]
    normal_closes: frozenset
    # Keep-alive and idle timeout.
    keepalive_message: Optional[str]  # a JSON type, None: the endpoint has none
    idle_timeout: Optional[float]  # seconds; None: unknown / unconfirmed
    silence_advice: str  # the next step for a client silence, as a clause
    keepalive_rule: str  # one sentence, with its source's wording
    close_codes: tuple[CloseCode, ...] = ()
    errors: dict = field(default_factory=dict)  # code -> Code (Error messages)
    warnings: dict = field(default_factory=dict)  # code -> Code (Warning messages)
    configure_failures: dict = field(default_factory=dict)
    combinations: Optional[Callable] = None  # (query, when) -> list of (param, value, msg, severity, breaks)

    def param(self, name: str) -> Optional[Param]:
        for p in self.params:
            if p.name == name:
                return p
        return None

    @property
    def param_names(self) -> frozenset:
        return frozenset(p.name for p in self.params)

    def code(self, kind: str, code: Optional[str]) -> Optional[Code]:
        """The catalogue entry of an Error ("error") or Warning ("warning") code."""
        table = self.errors if kind == "error" else self.warnings
        return table.get(code) if isinstance(code, str) else None


def sample_rate_problem(query: dict, rates: dict, where: str) -> list:
    """The TTS output rate check shared by /v1/speak and /v2/speak: the rate must be one
    the (default linear16) encoding offers."""
    from ..params import query_value, to_int
    encoding = query_value(query, "encoding") or "linear16"
    rate_text = query_value(query, "sample_rate")
    rate = to_int(rate_text)
    if encoding not in rates or rate is None or rate <= 0 or rate in rates[encoding]:
        return []
    allowed = ", ".join(str(r) for r in sorted(rates[encoding]))
    return [("sample_rate", rate_text, f"sample_rate={rate_text} is not offered for {encoding} "
             f"on {where} ({allowed})", "warning", None)]


def normalise(text: str) -> str:
    import re
    return re.sub(r"[^a-z0-9]", "", text.lower())


def codes(*entries: Code) -> dict:
    return {c.code: c for c in entries}
