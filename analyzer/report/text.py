"""Small formatting helpers shared by every renderer."""
from __future__ import annotations

from .. import timefmt

from ..model import CLIENT, SERVER, Session

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def clock(ts: float | None, date: bool = False) -> str:
    return timefmt.clock(ts, date, missing="-")


def handshake_summary(s: Session, none: str = "-", reason: bool = True) -> str:
    """The handshake in a few words: its status (with the reason), or what is missing;
    `none` when there was no handshake at all."""
    hs = s.handshake
    if hs.status is not None:
        return f"{hs.status} {hs.reason or ''}".strip() if reason else str(hs.status)
    if hs.request_frame is not None:
        return "no response"
    if s.midstream:
        return "not captured"
    return none


def close_summary(s: Session) -> str:
    parts = []
    for name, cf in (("C", s.close.client), ("S", s.close.server)):
        if cf is not None:
            parts.append(f"{name}:{cf.code if cf.code is not None else 'empty'}")
    parts.append(s.close.tcp_end.upper() if s.close.tcp_end != "open" else "open")
    return " ".join(parts)


def frames_summary(s: Session) -> str:
    return f"{s.frames[CLIENT].total}/{s.frames[SERVER].total}"


def finding_counts(s: Session) -> dict[str, int]:
    counts = {"error": 0, "warning": 0, "info": 0}
    for f in s.findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    return counts


def sorted_findings(findings):
    """Most severe first, then earliest; at the same severity and time, the finding the
    diagnosis would speak for first (deepgram.diagnosis.finding_rank), then by id: the first
    finding (the summary's "top finding") never depends on the order rules ran in."""
    from ..deepgram.diagnosis import finding_rank
    return sorted(findings, key=lambda f: (SEVERITY_ORDER.get(f.severity, 3),
                                           f.time if f.time is not None else 0.0,
                                           finding_rank(f.id), f.id))


def duration(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    return f"{b - a:.3f} s"
