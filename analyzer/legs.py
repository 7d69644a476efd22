"""One stream seen on both sides of an HTTP proxy: two TCP connections, one session.

A capture taken on the proxy host (or on both of its links) holds the client-to-proxy
connection (a CONNECT tunnel, or a request with an absolute-form target to a forward proxy)
and the proxy-to-server connection carrying the same stream.  They are linked when:

* the server leg is not itself through a proxy and names the same server: its TLS SNI, or
  its Host header, is the host of the client leg's CONNECT authority / absolute target;
* it starts after the client leg's proxy request, and not after the client leg ended;
* both legs carry the same stream: equal WebSocket frame counts and payload bytes in each
  direction, or, when neither could be decrypted, equal TLS application-data record bytes.

The client leg's session keeps everything and lists both legs (`proxy.legs`); the server
leg's session is dropped from the report (a live view may already have shown it).
"""
from __future__ import annotations

from typing import Optional

from .model import CLIENT, SERVER, ProxyLeg, Session
from .servername import host_without_port


def is_client_leg(s: Session) -> bool:
    """A session link_proxy_legs may fold a server leg into (none: it changes nothing)."""
    return s.proxy is not None and not s.proxy.refused


def link_proxy_legs(sessions: list[Session]) -> list[Session]:
    """The sessions with each linked server leg folded into its client leg."""
    client_legs = [s for s in sessions if is_client_leg(s)]
    if not client_legs:
        return sessions
    linked: set[int] = set()
    for client_leg in client_legs:
        host = host_without_port(client_leg.proxy.authority)
        wanted = _stream_signature(client_leg)
        if wanted is None:
            continue
        for candidate in sessions:
            if (candidate is client_leg or candidate.proxy is not None or id(candidate) in linked
                    or _server_name(candidate) != host or not _during(candidate, client_leg)
                    or _stream_signature(candidate) != wanted):
                continue
            linked.add(id(candidate))
            client_leg.proxy.legs = [_leg("client-to-proxy", client_leg),
                                     _leg("proxy-to-server", candidate)]
            break
    return [s for s in sessions if id(s) not in linked]


def _leg(name: str, s: Session) -> ProxyLeg:
    return ProxyLeg(name, s.tcp_stream, s.client, s.server, s.start_frame, s.end_frame)


def _server_name(s: Session) -> Optional[str]:
    if s.tls is not None and s.tls.sni:
        return host_without_port(s.tls.sni)
    for name, value in s.handshake.request_headers:
        if name.lower() == "host":
            return host_without_port(value)
    return None


def _during(server_leg: Session, client_leg: Session) -> bool:
    start, began = server_leg.start_time, client_leg.proxy.request_time
    end = client_leg.end_time
    return (start is not None and began is not None and start >= began
            and (end is None or start <= end))


def _stream_signature(s: Session) -> Optional[tuple]:
    frames = s.frames
    if frames[CLIENT].total or frames[SERVER].total:
        return ("frames",) + tuple(
            (f.text, f.binary, f.continuation, f.ping, f.pong, f.close, f.other, f.payload_bytes)
            for f in frames)
    if s.tls is not None and s.tls.activity:
        return ("tls-records",) + tuple(s.tls.activity.get(side, {}).get("app_record_bytes")
                                        for side in ("client", "server"))
    return None
