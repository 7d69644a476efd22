"""How capture times read in every output: UTC time of day with milliseconds (cut, not
rounded, as Wireshark shows them), e.g. 12:00:03.120."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

# Below this a "time" is seconds since some start (a synthetic session), not a date.
RELATIVE_BELOW = 1e8


def clock(ts: Optional[float], date: bool = False, missing: str = "?") -> str:
    """A capture timestamp as UTC wall-clock time (with the date when `date`)."""
    if ts is None:
        return missing
    if ts < RELATIVE_BELOW:
        return f"{ts:.3f} s"
    fmt = "%Y-%m-%d %H:%M:%S.%f" if date else "%H:%M:%S.%f"
    return datetime.fromtimestamp(ts, timezone.utc).strftime(fmt)[:-3]
