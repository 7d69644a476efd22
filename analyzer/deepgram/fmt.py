"""Small formatting helpers shared by findings and the diagnosis sentence."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

# Capture timestamps are epoch seconds; tests and synthetic sessions may use small
# relative times, which read better as seconds than as 00:00:03 on 1 Jan 1970.
_EPOCH_CUTOFF = 1e8


def clock(t: Optional[float]) -> str:
    """Time of day (UTC) with milliseconds, e.g. 12:00:03.120."""
    if t is None:
        return "?"
    if t < _EPOCH_CUTOFF:
        return f"{t:.3f} s"
    dt = datetime.fromtimestamp(t, tz=timezone.utc)
    return dt.strftime("%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def secs(x: Optional[float]) -> str:
    return "?" if x is None else f"{x:.1f} s"


def plural(n: int, word: str, many: Optional[str] = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def shorten(s: Optional[str], limit: int = 120) -> str:
    s = (s or "").strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"
