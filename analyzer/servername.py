"""Which server a connection talked to, from what is on the wire, and whether it is Deepgram.

Sources, best first: the TLS ClientHello's SNI, the HTTP Host header of the upgrade request,
the authority of an HTTP CONNECT that opened a tunnel, and a DNS answer in the capture that
gave the server's address.  The name is evidence, not proof (a client may send any SNI):
renderers say where it came from and in which frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Iterable, Optional

# Deepgram's hosted API hosts: api.deepgram.com, the regional api.eu/au/in.deepgram.com,
# agent.deepgram.com (Voice Agent); deepgram-protocol.md, "Endpoints".
DEEPGRAM_HOST_PATTERNS = ("deepgram.com", "*.deepgram.com")

# A CONNECT names the tunnel's server before anything inside it does (issue 14).
SOURCES = ("connect", "sni", "host", "dns")


@dataclass
class ServerName:
    name: str
    source: str  # sni | host | connect | dns
    frame: Optional[int]
    # The DNS answer that gave the server's address, when another source named it first.
    dns_frame: Optional[int] = None
    # A Deepgram host (or a --server-name pattern): the stream is kept and read as Deepgram.
    deepgram: bool = False

    def to_json(self) -> dict:
        out = {"name": self.name, "source": self.source, "frame": self.frame,
               "deepgram": self.deepgram}
        if self.dns_frame is not None:
            out["dns_frame"] = self.dns_frame
        return out

    def dns_answer(self) -> Optional[tuple[str, int]]:
        """(name, frame) of the DNS answer behind this name, if one was seen."""
        if self.source == "dns":
            return (self.name, self.frame)
        return (self.name, self.dns_frame) if self.dns_frame is not None else None

    def evidence(self) -> str:
        """'SNI in No. 229, DNS answer No. 171', for the session's first line."""
        label = {"sni": "SNI in", "host": "Host header in", "connect": "CONNECT in",
                 "dns": "DNS answer"}[self.source]
        text = f"{label} No. {self.frame}" if self.frame is not None else label
        if self.dns_frame is not None and self.source != "dns":
            text += f", DNS answer No. {self.dns_frame}"
        return text


def host_without_port(authority: str) -> str:
    """'api.deepgram.com:443' -> 'api.deepgram.com'; '[::1]:80' -> '::1'; lower case."""
    host = authority.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def choose_server_name(candidates: Iterable[tuple[str, Optional[str], Optional[int]]],
                       dns: Optional[tuple[str, int]] = None) -> Optional[ServerName]:
    """The best of (source, name, frame) candidates in SOURCES order, else the DNS answer.

    `dns` is (name, frame) of the answer that gave the server's address; when a better
    source named the same host, its frame is kept as corroboration."""
    best = None
    for source, name, frame in candidates:
        if not name:
            continue
        if best is None or SOURCES.index(source) < SOURCES.index(best.source):
            best = ServerName(host_without_port(name), source, frame)
    if best is None:
        return ServerName(dns[0], "dns", dns[1]) if dns is not None else None
    if dns is not None and dns[0] == best.name:
        best.dns_frame = dns[1]
    return best


class HostMatcher:
    """Deepgram's hosts plus the patterns given with --server-name (self-hosted deployments).

    Patterns are shell-style (`*.example.net`, `asr-?.corp`), matched case-insensitively
    against the whole name."""

    __slots__ = ("patterns",)

    def __init__(self, extra: Iterable[str] = ()):
        self.patterns = tuple(DEEPGRAM_HOST_PATTERNS) + tuple(p.strip().lower() for p in extra
                                                               if p.strip())

    def matches(self, name: Optional[str]) -> bool:
        if not name:
            return False
        name = name.lower().rstrip(".")
        return any(fnmatchcase(name, p) for p in self.patterns)


def is_deepgram_host(name: Optional[str]) -> bool:
    """Deepgram's own hosted API (not a --server-name pattern)."""
    return HostMatcher().matches(name)
