"""The one place finding rules are registered.

A rule is a small function `rule(session, ctx) -> iterable of Finding` that reads
the finished session model (and ctx.gap_threshold) and says what it means.  Protocol
layers only record evidence (frames, gaps, anomalies); rules decide.
Adding a diagnosis = adding one decorated function in one rules module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ..model import Finding, Session

RuleFn = Callable[[Session, "RuleContext"], Iterable[Finding]]
RULES: list[tuple[str, RuleFn]] = []


@dataclass
class RuleContext:
    gap_threshold: float = 10.0


def rule(fn: RuleFn) -> RuleFn:
    RULES.append((fn.__name__, fn))
    return fn


def run_rules(session: Session, ctx: RuleContext) -> list[Finding]:
    _load_rule_modules()
    found: list[Finding] = []
    for _name, fn in RULES:
        found.extend(fn(session, ctx) or ())
    return found


def display_filter(tcp_stream: int, frames: list[int]) -> str:
    """A Wireshark display filter that isolates a finding's evidence."""
    base = f"tcp.stream eq {tcp_stream}"
    if not frames:
        return base
    lo, hi = min(frames), max(frames)
    if lo == hi:
        return f"{base} && frame.number == {lo}"
    return f"{base} && frame.number >= {lo} && frame.number <= {hi}"


_loaded = False


def _load_rule_modules() -> None:
    # Importing the modules runs their @rule decorators.
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import deepgram_endpoint_rules, deepgram_rules, rules  # noqa: F401
