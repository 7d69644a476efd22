"""HTTP proxies in a WebSocket's path (RFC 9110 §9.3.6 CONNECT, RFC 9112 §3.2.2 absolute form).

A CONNECT request's target is the authority (`api.deepgram.com:443`); its 2xx answer turns the
connection into a tunnel, whose bytes the pipeline sniffs like a new connection's.  A request
whose target is absolute (`GET http://api.deepgram.com/v1/listen`) is sent to a forward proxy.
"""
from __future__ import annotations

from typing import Optional

_ABSOLUTE_SCHEMES = ("http://", "https://", "ws://", "wss://")


def absolute_form_authority(target: str) -> Optional[str]:
    """'ws://api.deepgram.com/v1/listen?x' -> 'api.deepgram.com'; None for origin form."""
    lowered = target[:8].lower()
    for scheme in _ABSOLUTE_SCHEMES:
        if lowered.startswith(scheme):
            rest = target[len(scheme):]
            end = len(rest)
            for stop in "/?#":
                at = rest.find(stop)
                if at != -1 and at < end:
                    end = at
            authority = rest[:end].rsplit("@", 1)[-1]  # never keep userinfo (credentials)
            return authority or None
    return None
