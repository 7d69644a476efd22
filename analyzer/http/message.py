"""What the parsers hand back: one parsed HTTP request or response."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


class _Fields:
    headers: list[list[str]]

    def header(self, name: str) -> Optional[str]:
        """The first value of header `name` (case-insensitive), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        """Every value of header `name` (case-insensitive), in the order sent."""
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]


@dataclass
class Request(_Fields):
    method: str
    target: str  # as sent, query included
    path: str  # target without the query
    query: dict  # name -> str, or list[str] when the name repeats
    version: str
    headers: list[list[str]]  # [name, value] in order, original case, duplicates kept
    head_size: int = 0  # bytes of the head, final empty line included
    # None when the framing allows no body; bytes (at most max_body_bytes of it) otherwise.
    body: Optional[bytes] = None
    body_complete: bool = True
    body_size: int = 0  # body bytes seen, including any beyond max_body_bytes
    chunked: bool = False
    trailers: list[list[str]] = field(default_factory=list)


@dataclass
class Response(_Fields):
    version: str
    status: int
    reason: Optional[str]  # as sent; may be empty (None from the test builders)
    headers: list[list[str]]
    head_size: int = 0
    body: Optional[bytes] = None
    body_complete: bool = True
    body_size: int = 0
    chunked: bool = False
    trailers: list[list[str]] = field(default_factory=list)
