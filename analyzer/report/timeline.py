"""A session's timeline as an inline SVG (for the HTML report).

Rows, top to bottom: findings pinned at their time (numbered like the findings list),
server messages (Results, Metadata, ...), client control messages (KeepAlive,
Finalize, CloseStream, ...), client audio payload bytes per second (inflated when
permessage-deflate compressed them, as the Stream section counts them), and frames per interval
(client up, server down).  Client silences are shaded with their length; the 101,
close frames and the TCP end are vertical lines labelled under the axis.

Pure Python, no script: the chart prints, and colours come from CSS classes so the
page's light/dark/print styles apply.  Every piece of text is HTML-escaped.
"""
from __future__ import annotations

import math
from html import escape
from typing import Iterable, Optional

from ..deepgram.messages import NOT_JSON, NO_TYPE, parse_text
from ..egress import human_rate
from ..model import CLIENT, Session, gap_end
from .content import FindingItem
from .text import clock

W = 1000
LEFT, RIGHT = 122, 16
PW = W - LEFT - RIGHT
PIN_Y = 14
SRV_Y, CLI_Y = 40, 62
AUDIO_TOP, AUDIO_BOTTOM = 78, 138
FR_TOP, FR_MID, FR_BOTTOM = 150, 190, 230
SHADE_TOP = 30
AXIS_Y = 234
LABEL_TOP = 264
LANE_H = 13
MAX_COLUMNS = 400
CHAR_W = 5.6  # approximate width of a 10-unit glyph

SERVER_SHAPES = {"Results": "results", "TurnInfo": "results", "Metadata": "metadata", "Error": "error",
                 "Warning": "warning"}
CLIENT_SHAPES = {"KeepAlive": "keepalive", "Finalize": "finalize", "CloseStream": "closestream"}
LEGEND = (
    ("audio", "client audio payload bytes/s (inflated)"), ("client", "client frames"), ("server", "server frames"),
    ("gap", "client silence (no frame)"), ("gap-audio", "no audio"),
    ("m-keepalive", "KeepAlive"), ("m-finalize", "Finalize"), ("m-closestream", "CloseStream"),
    ("m-results", "Results / TurnInfo"), ("m-metadata", "Metadata"), ("m-error", "Error"),
    ("m-warning", "Warning"), ("m-other", "other message"),
    ("ev-open", "101"), ("ev-close", "close frame"), ("ev-end", "TCP end"),
)


def _e(text) -> str:
    return escape(str(text), quote=True)


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if abs(x - round(x)) > 1e-9 else str(int(round(x)))


def _nice_step(span: float, target: int = 8) -> float:
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _tick_label(sec: float, step: float) -> str:
    if step >= 60 or sec >= 600:
        m, s = divmod(int(round(sec)), 60)
        return f"+{m}:{s:02d}"
    digits = 0 if step >= 1 else 1 if step >= 0.1 else 2 if step >= 0.01 else 3
    return f"+{sec:.{digits}f} s"


class _Scale:
    def __init__(self, t0: float, t1: float):
        self.t0, self.t1 = t0, t1
        self.k = PW / (t1 - t0)

    def x(self, t: float) -> float:
        return LEFT + (t - self.t0) * self.k


def _time_range(s: Session, items: list[FindingItem]) -> Optional[tuple[float, float]]:
    times: list[float] = []
    hs = s.handshake
    for t in (hs.request_time, hs.response_time, s.start_time, s.end_time, s.close.tcp_end_time):
        if t is not None:
            times.append(t)
    for cf in (s.close.client, s.close.server):
        if cf is not None:
            times.append(cf.time)
    for g in s.gaps:
        times += [g.start, g.end]
    tl = s.timeline
    if tl is not None and tl.origin is not None and tl.bins:
        times.append(tl.origin)  # the last bin's end is not data: _data_end() clips it
    times += [f.at for f in items if f.at is not None]
    if s.messages:
        times += [s.messages[0].time, s.messages[-1].time]
    if not times:
        return None
    t0, t1 = min(times), max(times)
    if t1 - t0 < 1e-3:
        t1 = t0 + 1.0
    return t0, t1 + (t1 - t0) * 0.015


def _columns(s: Session) -> tuple[list[tuple[float, float, list[int]]], float]:
    """(start, width, [client frames, server frames, client bytes, server bytes, audio bytes])."""
    tl = s.timeline
    if tl is None or tl.origin is None or not tl.bins:
        return [], 1.0
    width = tl.width
    factor = max(1, math.ceil((max(tl.bins) + 1) / MAX_COLUMNS))
    merged: dict[int, list[int]] = {}
    for i, b in tl.bins.items():
        m = merged.setdefault(i // factor, [0, 0, 0, 0, 0])
        for k in range(5):
            m[k] += b[k]
    w = width * factor
    return [(tl.origin + j * w, w, m) for j, m in sorted(merged.items())], w


def _message_marks(s: Session) -> list[tuple[int, str, str, int, float]]:
    """(direction, shape class, type, frame, time) for each kept text message."""
    out = []
    for m in s.messages:
        if m.opcode != 1 or m.text is None:
            continue
        t = parse_text(m.text).type
        if t in (NOT_JSON, NO_TYPE):
            t = "(not JSON)" if t == NOT_JSON else "(no type)"
        shapes = CLIENT_SHAPES if m.direction == CLIENT else SERVER_SHAPES
        out.append((m.direction, "m-" + shapes.get(t, "other"), t, m.frame, m.time))
    return out


def _shape(cls: str, x: float, y: float) -> str:
    if cls == "m-results":
        return f'<line class="{cls}" x1="{x:.1f}" y1="{y - 7}" x2="{x:.1f}" y2="{y + 7}"/>'
    if cls == "m-metadata":
        return f'<path class="{cls}" d="M{x:.1f} {y - 6}l5 6l-5 6l-5 -6z"/>'
    if cls in ("m-error", "m-warning"):
        return f'<path class="{cls}" d="M{x:.1f} {y - 6}l6 11h-12z"/>'
    if cls == "m-keepalive":
        return f'<circle class="{cls}" cx="{x:.1f}" cy="{y}" r="4"/>'
    if cls == "m-finalize":
        return f'<rect class="{cls}" x="{x - 4:.1f}" y="{y - 4}" width="8" height="8"/>'
    if cls == "m-closestream":
        return f'<path class="{cls}" d="M{x - 6:.1f} {y - 5}h12l-6 11z"/>'
    return f'<circle class="{cls}" cx="{x:.1f}" cy="{y}" r="2.5"/>'


def _lanes(labels: Iterable[tuple]) -> list[tuple]:
    """Greedy placement of labels under the axis: (x, text, payload) -> (x, text, payload, lane, anchor_end)."""
    placed: list[tuple[float, float, int]] = []
    out = []
    for x, text, payload in sorted(labels, key=lambda lt: lt[0]):
        wid = len(text) * CHAR_W + 6
        end = x + wid > W - 2
        lo, hi = (x - wid, x) if end else (x, x + wid)
        lane = 0
        while any(lane == pl and not (hi < plo or lo > phi) for plo, phi, pl in placed):
            lane += 1
        placed.append((lo, hi, lane))
        out.append((x, text, payload, lane, end))
    return out


def _data_end(s: Session) -> Optional[float]:
    """The last frame (or record) time: bins are not drawn past it."""
    ends = [c.last_time for c in s.frames if c.last_time is not None]
    if ends:
        return max(ends)
    return s.end_time


def timeline_svg(s: Session, items: list[FindingItem], key: str) -> Optional[tuple[str, set]]:
    """(svg, CSS classes drawn) for one session, or None when there is nothing to draw over time."""
    columns, col_w = _columns(s)
    if not s.websocket and not columns:
        return None
    used: set[str] = set()
    rng = _time_range(s, items)
    if rng is None:
        return None
    sc = _Scale(*rng)
    x = sc.x
    encrypted = s.transport == "tls"
    unit = "records" if encrypted else "frames"
    parts: list[str] = []
    add = parts.append

    # --- grid and axis
    step = _nice_step(sc.t1 - sc.t0)
    tick = 0.0
    while tick <= sc.t1 - sc.t0 + 1e-9:
        tx = x(sc.t0 + tick)
        add(f'<line class="grid" x1="{tx:.1f}" y1="{SHADE_TOP}" x2="{tx:.1f}" y2="{AXIS_Y}"/>')
        add(f'<text class="tick" x="{tx:.1f}" y="{AXIS_Y + 12}" text-anchor="middle">{_e(_tick_label(tick, step))}</text>')
        tick += step
    add(f'<line class="axis" x1="{LEFT}" y1="{AXIS_Y}" x2="{W - RIGHT}" y2="{AXIS_Y}"/>')
    add(f'<line class="axis" x1="{LEFT}" y1="{FR_MID}" x2="{W - RIGHT}" y2="{FR_MID}"/>')
    add(f'<line class="axis" x1="{LEFT}" y1="{AUDIO_BOTTOM}" x2="{W - RIGHT}" y2="{AUDIO_BOTTOM}"/>')

    # --- row labels (left gutter)
    data_end = _data_end(s)
    spans = []  # (start, width, counts, drawn span, audio bytes/s over the span)
    for start, w, c in columns:
        end = start + w if data_end is None else max(min(start + w, data_end), start)
        span = end - start
        spans.append((start, w, c, span, c[4] / max(span, w * 0.25)))
    max_rate = max((r for *_, r in spans), default=0)
    max_frames = max((max(c[0], c[1]) for _, _, c in columns), default=0)
    per = _num(col_w) + " s"
    labels = [(PIN_Y + 4, "findings", ""), (SRV_Y + 4, "server msgs", ""), (CLI_Y + 4, "client msgs", ""),
              (AUDIO_TOP + 20, "client audio", "n/a (encrypted)" if encrypted else
               f"max {human_rate(max_rate)}" if max_rate else "none"),
              (FR_MID - 4, f"{unit} / {per}", f"max {max_frames}"),
              (FR_TOP + 10, "client ↑", ""), (FR_BOTTOM - 2, "server ↓", "")]
    for y, text, sub in labels:
        add(f'<text class="rowlabel" x="{LEFT - 8}" y="{y}" text-anchor="end">{_e(text)}</text>')
        if sub:
            add(f'<text class="rowsub" x="{LEFT - 8}" y="{y + 12}" text-anchor="end">{_e(sub)}</text>')

    # --- gaps (under the data)
    for g in s.gaps:
        gx0, gx1 = x(g.start), x(g.end)
        wid = max(gx1 - gx0, 1.5)
        audio_only = g.kind == "audio"
        y0, y1 = (AUDIO_TOP, AUDIO_BOTTOM) if audio_only else (SHADE_TOP, FR_BOTTOM)
        text = f"{'no audio' if audio_only else 'silence'} {g.seconds:.3f} s"
        tip = (f"client {'audio ' if audio_only else ''}gap {g.seconds:.3f} s: No. {g.after_frame} "
               f"{clock(g.start)} to {clock(g.end)}, ended by {gap_end(s, g)}")
        used.add("gap-audio" if audio_only else "gap")
        add(f'<g class="{"gap-audio" if audio_only else "gap"}"><title>{_e(tip)}</title>'
            f'<rect x="{gx0:.1f}" y="{y0}" width="{wid:.1f}" height="{y1 - y0}"/>')
        ty = AUDIO_TOP + 12 if audio_only else FR_TOP + 14
        tw = len(text) * CHAR_W
        if wid > tw + 6:
            add(f'<text class="gaplabel" x="{gx0 + wid / 2:.1f}" y="{ty}" text-anchor="middle">{_e(text)}</text>')
        else:
            anchor_end = gx0 + tw > W - RIGHT
            add(f'<text class="gaplabel" x="{gx0 + (-2 if anchor_end else 2):.1f}" y="{ty}" '
                f'text-anchor="{"end" if anchor_end else "start"}">{_e(text)}</text>')
        add("</g>")

    # --- bars
    audio_h = AUDIO_BOTTOM - AUDIO_TOP
    half = FR_MID - FR_TOP
    for start, w, c, span, rate in spans:
        bx = x(start)
        bw = span * sc.k
        # a histogram: full bins are drawn as separate columns; a bin cut at the last frame keeps its width
        bw = max(bw * 0.88 if bw > 8 and span >= w * 0.999 else bw - 0.6, 1.2)
        if c[4] and max_rate:
            h = max(rate / max_rate * audio_h, 1.0)
            add(f'<rect class="audio" x="{bx:.1f}" y="{AUDIO_BOTTOM - h:.1f}" width="{bw:.1f}" height="{h:.1f}">'
                f'<title>{_e(f"{clock(start)}: {human_rate(rate)} client audio payload (inflated)")}</title></rect>')
        if c[0] and max_frames:
            h = max(c[0] / max_frames * half, 1.0)
            add(f'<rect class="client" x="{bx:.1f}" y="{FR_MID - h:.1f}" width="{bw:.1f}" height="{h:.1f}">'
                f'<title>{_e(f"{clock(start)}: {c[0]} client {unit}, {c[2]:,} bytes")}</title></rect>')
        if c[1] and max_frames:
            h = max(c[1] / max_frames * half, 1.0)
            add(f'<rect class="server" x="{bx:.1f}" y="{FR_MID:.1f}" width="{bw:.1f}" height="{h:.1f}">'
                f'<title>{_e(f"{clock(start)}: {c[1]} server {unit}, {c[3]:,} bytes")}</title></rect>')

    # --- messages (one mark per pixel and type; the tooltip says how many)
    marks: dict[tuple, list] = {}
    for direction, cls, t, frame, ts in _message_marks(s):
        mx = x(ts)
        k = (direction, cls, round(mx / 2))
        if k in marks:
            marks[k][3] += 1
        else:
            marks[k] = [mx, t, f"No. {frame} {t} {clock(ts)}", 1]
    for (direction, cls, _), (mx, t, tip, n) in marks.items():
        used.add(cls)
        y = CLI_Y if direction == CLIENT else SRV_Y
        more = f" (+{n - 1} more here)" if n > 1 else ""
        add(f'<g><title>{_e(tip + more)}</title>{_shape(cls, mx, y)}</g>')

    # --- events: 101, close frames, TCP end
    events: list[tuple[float, str, str, str]] = []
    hs = s.handshake
    if hs.status == 101 and hs.response_time is not None:
        events.append((hs.response_time, "ev-open", f"101 (No. {hs.response_frame})", "101 Switching Protocols"))
    for side, cf in (("C", s.close.client), ("S", s.close.server)):
        if cf is not None:
            code = cf.code if cf.code is not None else "empty"
            events.append((cf.time, "ev-close", f"{side} close {code}",
                           f"{'client' if side == 'C' else 'server'} close {code} (No. {cf.frame} {clock(cf.time)})"))
    c = s.close
    if c.tcp_end != "open" and c.tcp_end_time is not None:
        events.append((c.tcp_end_time, "ev-end" + (" rst" if c.tcp_end == "rst" else ""),
                       f"{c.tcp_end.upper()} {c.tcp_end_by}",
                       f"TCP {c.tcp_end.upper()} from the {c.tcp_end_by} (No. {c.tcp_end_frame} {clock(c.tcp_end_time)})"))
    lanes_used = 0
    for ex, label, (cls, tip), lane, end in _lanes((x(t), label, (cls, tip)) for t, cls, label, tip in events):
        used.add(cls.split()[0])
        ly = LABEL_TOP + lane * LANE_H
        lanes_used = max(lanes_used, lane + 1)
        add(f'<g class="{cls}"><title>{_e(tip)}</title>'
            f'<line x1="{ex:.1f}" y1="{SHADE_TOP}" x2="{ex:.1f}" y2="{ly - 9}"/>'
            f'<text x="{ex + (-2 if end else 2):.1f}" y="{ly}" text-anchor="{"end" if end else "start"}">'
            f'{_e(label)}</text></g>')

    # --- findings pinned at their time (numbers match the findings list)
    pins = sorted(((x(f.at), f) for f in items if f.at is not None), key=lambda p: (p[0], p[1].number))
    last_px = -100.0
    for fx, f in pins:
        px = max(fx, last_px + 17)
        last_px = px
        tip = f"F{f.number} {f.severity} {f.id}: {f.frames} at {f.time}"
        leader = (f'<line x1="{fx:.1f}" y1="{SHADE_TOP}" x2="{px:.1f}" y2="{PIN_Y + 7}"/>' if px - fx > 0.5 else
                  f'<line x1="{fx:.1f}" y1="{SHADE_TOP}" x2="{fx:.1f}" y2="{PIN_Y + 7}"/>')
        add(f'<g class="pin pin-{_e(f.severity)}"><title>{_e(tip)}</title>{leader}'
            f'<circle cx="{px:.1f}" cy="{PIN_Y}" r="7.5"/>'
            f'<text x="{px:.1f}" y="{PIN_Y + 3.5}" text-anchor="middle">{f.number}</text></g>')

    height = LABEL_TOP + max(lanes_used, 1) * LANE_H + 4
    title = (f"Timeline of session {s.index} ({s.client} → {s.server}); t = 0 at "
             f"{clock(sc.t0, date=True)} UTC")
    if columns:
        used.update(("client", "server") if encrypted else ("audio", "client", "server") if max_rate else
                    ("client", "server"))
    svg = (f'<svg class="tl" id="{_e(key)}-timeline" role="img" aria-label="{_e(title)}" '
            f'viewBox="0 0 {W} {height}" width="100%" preserveAspectRatio="xMinYMin meet"><title>{_e(title)}</title>'
            + "".join(parts) + "</svg>")
    return svg, used


def legend_html(used: Optional[set] = None, encrypted: bool = False) -> str:
    """A small legend drawn with the same classes as the chart (only those it uses)."""
    items = []
    for cls, text in LEGEND:
        if used is not None and cls not in used:
            continue
        if encrypted and cls in ("client", "server"):
            text = text.replace("frames", "TLS records")
        if cls.startswith("m-"):
            sym = _shape(cls, 8, 7)
        elif cls.startswith("ev-"):
            sym = f'<g class="{cls}"><line x1="8" y1="0" x2="8" y2="14"/></g>'
        elif cls.startswith("gap"):
            sym = f'<g class="{cls}"><rect x="1" y="2" width="14" height="10"/></g>'
        else:
            sym = f'<rect class="{cls}" x="1" y="2" width="14" height="10"/>'
        items.append(f'<span class="lg"><svg class="tl" viewBox="0 0 16 14" width="16" height="14" '
                     f'aria-hidden="true">{sym}</svg>{_e(text)}</span>')
    return '<div class="legend">' + "".join(items) + "</div>"
