"""Small formatting helpers shared by findings and the diagnosis sentence."""
from __future__ import annotations

from typing import Optional


def secs(x: Optional[float]) -> str:
    return "?" if x is None else f"{x:.1f} s"


def plural(n: int, word: str, many: Optional[str] = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def shorten(s: Optional[str], limit: int = 120) -> str:
    s = (s or "").strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"
