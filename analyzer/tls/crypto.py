"""The `cryptography` package, imported on first use.

Only decryption (a key log with the capture's secrets) needs it, and importing it costs
about 10 ms of every run's start, a report of a pure WebSocket capture included.
`crypto.InvalidTag` imports it then (an `except crypto.InvalidTag:` looks the name up only
when an exception reaches it).
"""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "InvalidTag":
        from cryptography.exceptions import InvalidTag
        globals()[name] = InvalidTag
        return InvalidTag
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
