"""The one place finding rules are registered.

A rule is a small function `rule(session, ctx) -> iterable of Finding` that reads
the finished session model (and ctx.gap_threshold) and says what it means.  Protocol
layers only record evidence (frames, gaps, anomalies); rules decide.
Adding a diagnosis = adding one decorated function in one rules module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from ..model import ERROR, Finding, Session

RuleFn = Callable[[Session, "RuleContext"], Iterable[Finding]]
RULES: list[tuple[str, RuleFn]] = []


@dataclass
class RuleContext:
    gap_threshold: float = 10.0
    keylog_name: Optional[str] = None  # the key log file the user gave (its name only), if any


def rule(fn: RuleFn) -> RuleFn:
    RULES.append((fn.__name__, fn))
    return fn


def run_rules(session: Session, ctx: RuleContext) -> list[Finding]:
    _load_rule_modules()
    found: list[Finding] = []
    for name, fn in RULES:
        try:
            found.extend(fn(session, ctx) or ())
        except Exception as e:  # a bug in one rule costs that rule's findings, not the session's
            found.append(internal_error_finding(type(e).__name__, f"findings ({name})", str(e) or repr(e),
                                                None, None))
    return found


def internal_error_finding(exception: str, layer: str, message: str, frame: Optional[int],
                           time: Optional[float]) -> Finding:
    """dgcap itself failed while analysing a session: say where, so the rest stays trustworthy."""
    where = f"No. {frame}" if frame is not None else "the end of the connection"
    return Finding("internal-error", ERROR,
                   f"dgcap hit an internal error: {exception} in the {layer} layer at {where}: {message}; "
                   "what follows it on this connection was not analysed (please report this bug with "
                   "the capture).", [frame] if frame is not None else [], time,
                   {"count": 1, "exception": exception, "layer": layer, "message": message})


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
    from . import deepgram_endpoint_rules, deepgram_rules, encrypted_rules, rules  # noqa: F401
