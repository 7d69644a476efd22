"""The final transcript of a session, assembled with a size bound."""
from __future__ import annotations

LIMIT = 64 * 1024  # characters


class TranscriptBuilder:
    """Final pieces in arrival order; channel tags only when more than one channel spoke."""

    def __init__(self, limit: int = LIMIT, separator: str = " "):
        self.limit = limit
        self.separator = separator  # "\n" for agent conversations (one turn per line)
        self.pieces: list[tuple[int, str]] = []
        self.size = 0
        self.truncated = False
        self.channels: set[int] = set()

    def add(self, text: str, channel: int = 0) -> None:
        text = text.strip()
        if not text:
            return
        if self.size + len(text) + 1 > self.limit:
            self.truncated = True
            return
        self.pieces.append((channel, text))
        self.channels.add(channel)
        self.size += len(text) + 1

    def text(self) -> str:
        if len(self.channels) <= 1:
            return self.separator.join(t for _, t in self.pieces)
        return "\n".join(f"[channel {c}] {t}" for c, t in self.pieces)
