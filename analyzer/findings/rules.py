"""Generic WebSocket finding rules (any endpoint). Deepgram-specific ones live in deepgram_rules.py."""
from __future__ import annotations

from collections import defaultdict

from ..model import CLIENT, DIRECTION_NAMES, ERROR, INFO, SERVER, WARNING, Finding, Session, gap_end
from ..timefmt import clock
from .registry import RuleContext, internal_error_finding, rule

MAX_FRAMES_LISTED = 20




def frame_ref(frame: int | None) -> str:
    return f"No. {frame}" if frame is not None else "end of capture"


@rule
def handshake_failed(s: Session, ctx: RuleContext):
    hs = s.handshake
    if hs.status is None or hs.status == 101:
        return
    msg = f"Handshake failed: HTTP {hs.status}"
    if hs.reason:
        msg += f" {hs.reason}"
    if hs.dg_error:
        msg += f"; dg-error: {hs.dg_error}"
    if hs.dg_request_id:
        msg += f"; dg-request-id: {hs.dg_request_id}"
    details = {"status": hs.status, "reason": hs.reason, "dg_error": hs.dg_error,
               "dg_request_id": hs.dg_request_id}
    if hs.body_json:
        for key in ("err_code", "err_msg", "request_id", "category", "message", "details"):
            if key in hs.body_json:
                details[key] = hs.body_json[key]
    yield Finding("handshake-failed", ERROR, msg, [f for f in (hs.request_frame, hs.response_frame) if f],
                  hs.response_time, details)


@rule
def handshake_unanswered(s: Session, ctx: RuleContext):
    hs = s.handshake
    if hs.request_frame is None or hs.status is not None:
        return
    end = {"fin": "the connection was closed", "rst": "the connection was reset",
           "open": "the capture ended"}[s.close.tcp_end]
    yield Finding("handshake-unanswered", ERROR,
                  f"The upgrade request ({frame_ref(hs.request_frame)} at {clock(hs.request_time)}) got no "
                  f"HTTP response before {end}.", [hs.request_frame], hs.request_time,
                  {"tcp_end": s.close.tcp_end})


@rule
def bad_accept(s: Session, ctx: RuleContext):
    hs = s.handshake
    if hs.accept_valid is False:
        yield Finding("bad-accept", ERROR,
                      f"Sec-WebSocket-Accept {hs.ws_accept!r} does not match the key {hs.ws_key!r}; "
                      "a conforming client fails the connection.",
                      [hs.response_frame] if hs.response_frame else [], hs.response_time)


@rule
def gaps(s: Session, ctx: RuleContext):
    for g in s.gaps:
        what = "WebSocket frame of any kind" if g.kind == "any" else "audio (binary) frame"
        start = "the 101 response" if g.after_frame == s.handshake.response_frame else "the client's last frame"
        msg = (f"The client sent no {what} for {g.seconds:.3f} s: from {start} ({frame_ref(g.after_frame)} at "
               f"{clock(g.start)}) to {gap_end(s, g)} at {clock(g.end)}; threshold {ctx.gap_threshold:g} s.")
        yield Finding("client-gap" if g.kind == "any" else "audio-gap", WARNING, msg,
                      [f for f in (g.after_frame, g.before_frame) if f is not None], g.start,
                      {"seconds": round(g.seconds, 6), "after_frame": g.after_frame,
                       "before_frame": g.before_frame, "ended_by": g.ended_by})


@rule
def empty_binary_frames(s: Session, ctx: RuleContext):
    server_close = s.close.server
    for e in s.empty_binary:
        frames = [e.frame]
        details = {"frame": e.frame}
        msg = (f"The client sent an empty binary frame ({frame_ref(e.frame)} at {clock(e.time)}); "
               "Deepgram treats b'' as the end of the audio stream.")
        if server_close and server_close.time >= e.time:
            after = server_close.time - e.time
            msg += (f" The server closed {after:.3f} s later ({frame_ref(server_close.frame)}, code "
                    f"{server_close.code}).")
            frames.append(server_close.frame)
            details.update(server_close_after=round(after, 6), server_close_code=server_close.code)
        yield Finding("empty-binary-frame", WARNING, msg, frames, e.time, details)


@rule
def closure(s: Session, ctx: RuleContext):
    if not s.websocket:
        return
    c = s.close
    if c.client is None and c.server is None:
        if c.tcp_end == "open":
            return
        how = "reset (RST)" if c.tcp_end == "rst" else "closed (FIN)"
        yield Finding("abnormal-closure", ERROR,
                      f"The connection was {how} by the {c.tcp_end_by} ({frame_ref(c.tcp_end_frame)} at "
                      f"{clock(c.tcp_end_time)}) without a WebSocket close frame from either side; client "
                      "libraries report this as 1006.", [c.tcp_end_frame] if c.tcp_end_frame else [],
                      c.tcp_end_time, {"tcp_end": c.tcp_end, "tcp_end_by": c.tcp_end_by})
        return
    first = c.client if c.initiator == "client" else c.server
    other = c.server if c.initiator == "client" else c.client
    if other is None and c.tcp_end != "open":
        peer = "server" if c.initiator == "client" else "client"
        yield Finding("close-unanswered", INFO,
                      f"The {c.initiator} sent close {first.code} ({frame_ref(first.frame)}) but the {peer} "
                      f"sent no close frame before the TCP {c.tcp_end.upper()}.", [first.frame], first.time)


@rule
def close_codes(s: Session, ctx: RuleContext):
    # A Deepgram server's close gets a richer explanation from deepgram_rules (deepgram-close).
    deepgram = s.endpoint not in (None, "other")
    for side, cf in (("client", s.close.client), ("server", s.close.server)):
        if cf is None or cf.code in (None, 1000, 1001) or (deepgram and side == "server"):
            continue
        if s.close.initiator not in (None, side):
            continue  # the usual echo of the peer's close: the initiator's code is the story
        yield Finding("close-code", WARNING,
                      f"The {side} closed with {cf.code}"
                      + (f" {cf.reason!r}" if cf.reason else "") + f" ({frame_ref(cf.frame)}).",
                      [cf.frame], cf.time, {"side": side, "code": cf.code, "reason": cf.reason})


@rule
def internal_errors(s: Session, ctx: RuleContext):
    for a in s.anomalies:
        if a.kind == "internal-error":
            d = a.detail
            yield internal_error_finding(d["exception"], d["layer"], d["message"], a.frame, a.time)


# Protocol anomalies recorded by the layers -> findings, grouped per kind.
ANOMALY_FINDINGS = {
    "unmasked-client-frame": (WARNING, "client frames are not masked (RFC 6455 §5.1 requires it)"),
    "masked-server-frame": (WARNING, "server frames are masked (RFC 6455 §5.1 forbids it)"),
    "control-frame-too-long": (WARNING, "a control frame carries more than 125 bytes"),
    "fragmented-control-frame": (WARNING, "a control frame is fragmented"),
    "reserved-opcode": (WARNING, "a frame uses a reserved opcode"),
    "rsv-without-extension": (WARNING, "RSV bits are set without a negotiated extension"),
    "unexpected-continuation": (WARNING, "a continuation frame arrived with no message in progress"),
    "expected-continuation": (WARNING, "a new data frame arrived while a fragmented message was in progress"),
    "invalid-utf8": (WARNING, "text is not valid UTF-8"),
    "invalid-close-code": (WARNING, "a close frame carries an invalid status code"),
    "close-payload-one-byte": (WARNING, "a close frame has a one-byte payload"),
    "message-too-big": (WARNING, "a message exceeded the size kept for analysis (truncated)"),
    "http-header-overflow": (WARNING, "the HTTP response head grew past the limit without ending; the "
                                      "rest of the connection was not analysed"),
    "inflate-failed": (WARNING, "a compressed message could not be inflated"),
    "inflate-limit": (ERROR, "a compressed message inflates past the limit (decompression bomb?)"),
    "deflate-window-exceeded": (WARNING, "a peer used a larger deflate window than agreed"),
    "frame-after-close": (WARNING, "frames were sent after the close frame"),
    "frame-truncated": (WARNING, "a frame was cut off (its bytes are not in the capture)"),
    "length-not-minimal": (INFO, "a frame length uses a longer encoding than needed"),
    "resync": (WARNING, "bytes were skipped to find the next frame header after missing data"),
    "tcp-overlap-conflict": (WARNING, "retransmitted TCP data differs from the first copy (the first copy "
                                      "was used, as Wireshark does)"),
    "tcp-hole": (WARNING, "bytes of the TCP stream are missing from the capture"),
    "tls-no-keys": (INFO, "the session is encrypted and no TLS keys were given for it: WebSocket frames are "
                          "not visible (run the client with SSLKEYLOGFILE and pass --keylog)"),
    "tls-bad-record-mac": (ERROR, "TLS records failed authentication: the key log does not match this "
                                  "session (wrong or stale keys); decryption stopped"),
    "tls-unsupported-cipher": (WARNING, "the TLS cipher suite cannot be decrypted by dgcap (only AEAD suites)"),
    "tls-desync": (WARNING, "TLS record framing was lost after missing data; decryption stopped"),
    "tls-no-handshake": (INFO, "the TLS handshake is not in the capture, so keys cannot be matched"),
    "tls-handshake-cut": (INFO, "the TLS ClientHello is in the capture but cut short by the snap length: "
                                "the server name and TLS version cannot be read"),
    "midstream": (INFO, "the connection started before the capture: no handshake; frames found by content"),
    "frame-payload-missing": (WARNING, "a frame's payload is missing from the capture"),
    "length-msb-set": (WARNING, "a 64-bit frame length has its most significant bit set (RFC 6455 §5.2 "
                                "forbids it)"),
    "resync-failed": (WARNING, "no next frame header was found after missing data"),
    "sync-lost": (WARNING, "WebSocket framing was lost after missing data"),
    "tls-truncated-record": (WARNING, "a TLS record was cut off at the end of the connection"),
    "tls-hole": (WARNING, "TLS record bytes are missing from the capture"),
    "tls-resync": (WARNING, "bytes were skipped to find the next TLS record after missing data"),
    "tls-records-skipped": (WARNING, "TLS records were skipped after missing data (not decrypted)"),
    "tls-handshake-incomplete": (INFO, "the TLS handshake is not complete in the capture"),
    "tls-early-data-skipped": (INFO, "TLS 0-RTT early data was skipped (not decrypted)"),
    "tls-unexpected-content-type": (WARNING, "a TLS record has an unexpected content type"),
    "tls-bad-alert": (WARNING, "a TLS alert record is malformed"),
    "tls-renegotiation": (WARNING, "a TLS 1.2 renegotiation was seen (not decrypted past it)"),
    "tls-bad-handshake": (WARNING, "a TLS handshake message could not be parsed"),
}


def _keylog_wording(kind: str, items, ctx: RuleContext, severity: str, text: str) -> tuple[str, str]:
    """Why a TLS session was not decrypted, naming the key log the user gave: a wrong key log
    is not the same as none."""
    name = ctx.keylog_name
    if kind == "tls-no-keys" and name:
        reasons = {a.detail.get("reason") for a in items}
        if "client random not in key log" in reasons:
            return WARNING, (f"{name} has no entry for this session's client random: it holds keys for other "
                             "connections only (record this client's run with SSLKEYLOGFILE)")
        return WARNING, (f"{name} holds 0 usable secrets, so this encrypted session cannot be read "
                         "(WebSocket frames are not visible)")
    if kind == "tls-bad-record-mac" and name:
        return severity, (f"wrong secret (bad record MAC): the secrets in {name} for this session's client "
                          "random do not decrypt its records (wrong or stale keys); decryption stopped")
    return severity, text


@rule
def anomalies(s: Session, ctx: RuleContext):
    grouped = defaultdict(list)
    for a in s.anomalies:
        grouped[a.kind].append(a)
    # Kinds whose records hit the per-session cap are still counted, first and last frame kept.
    for kind in s.anomaly_overflow:
        grouped.setdefault(kind, [])
    for kind, items in grouped.items():
        if kind == "internal-error":
            continue  # internal_errors: one finding each
        tally = s.anomaly_overflow.get(kind)
        severity, text = ANOMALY_FINDINGS.get(kind, (WARNING, kind.replace("-", " ")))
        frames = {a.frame for a in items if a.frame is not None}
        directions = {a.direction for a in items if a.direction is not None}
        count = len(items)
        hole_bytes = sum(a.detail.get("bytes", 0) for a in items) if kind == "tcp-hole" else 0
        times = [a.time for a in items if a.time is not None]
        if tally is not None:
            count += tally.count
            frames.update(f for f in (tally.first_frame, tally.last_frame) if f is not None)
            directions.update(d for d in (CLIENT, SERVER) if tally.directions >> d & 1)
            hole_bytes += tally.bytes
            times.extend(t for t in (tally.first_time,) if t is not None)
        frames = sorted(frames)
        dirs = sorted(DIRECTION_NAMES[d] for d in directions)
        severity, text = _keylog_wording(kind, items, ctx, severity, text)
        msg = text[0].upper() + text[1:]
        if dirs:
            msg += f" (from the {' and the '.join(dirs)})"
        msg += ": " + ("once" if count == 1 else f"{count} times")
        if frames:
            shown = ", ".join(str(f) for f in frames[:MAX_FRAMES_LISTED])
            more = f" and {len(frames) - MAX_FRAMES_LISTED} more" if len(frames) > MAX_FRAMES_LISTED else ""
            msg += f", {'frame' if len(frames) == 1 else 'frames'} {shown}{more}"
        if tally is not None:
            msg += f" (the last {tally.count} past the record limit: only counted, last at frame {tally.last_frame})"
        details = {"count": count}
        if kind == "tcp-hole":
            details["bytes"] = hole_bytes
            msg += f"; {details['bytes']} bytes missing"
        first_time = min(times, default=None)
        yield Finding(kind, severity, msg + ".", frames[:MAX_FRAMES_LISTED], first_time, details)


# What to do about a proxy's refusal of a CONNECT, by status.
_PROXY_STEPS = {
    407: "the proxy wants credentials: configure the client with the proxy's user and password "
         "(Proxy-Authorization), or use a proxy that lets it through",
    403: "the proxy's policy forbids this destination or port: ask the network team to allow it",
    502: "the proxy could not reach the server: check the proxy's DNS and its route out",
    503: "the proxy could not reach the server: check the proxy's DNS and its route out",
    504: "the proxy timed out reaching the server: check its route out and any firewall after it",
}


@rule
def proxy_refused(s: Session, ctx: RuleContext):
    """A proxy answered a CONNECT with anything but 2xx: the stream never reached the server."""
    proxy = s.proxy
    if proxy is None or not proxy.refused:
        return
    step = _PROXY_STEPS.get(proxy.status, "check the proxy's log for why it refused")
    reason = f" {proxy.reason}" if proxy.reason else ""
    at = f" (frame {proxy.response_frame})" if proxy.response_frame is not None else ""
    frames = [f for f in (proxy.request_frame, proxy.response_frame) if f is not None]
    yield Finding("proxy-refused", ERROR,
                  f"The proxy refused CONNECT {proxy.authority} with {proxy.status}{reason}{at}: "
                  f"{step}.", frames, proxy.response_time,
                  {"status": proxy.status, "authority": proxy.authority})


@rule
def data_missing(s: Session, ctx: RuleContext):
    """TCP bytes a peer sent are not in the capture (exact totals, Session.missing): whatever
    they held (server messages, audio, a close frame) is lost, so the session is never
    called normal.  tcp-hole lists where; this says how much, per side."""
    parts, frames, details = [], [], {}
    for side, m, held in (("server", s.missing[SERVER], "server messages"),
                          ("client", s.missing[CLIENT], "client frames")):
        if m is None:
            continue
        first = f", first at frame {m.first_frame}" if m.first_frame is not None else ""
        parts.append(f"{m.bytes:,} bytes the {side} sent ({m.holes} gap{'s' if m.holes != 1 else ''}"
                     f"{first}); {held} in them are lost")
        if m.first_frame is not None:
            frames.append(m.first_frame)
        details[f"{side}_bytes"] = m.bytes
        details[f"{side}_holes"] = m.holes
    if not parts:
        return
    yield Finding("data-missing", WARNING,
                  "Part of the session is missing from the capture: " + "; ".join(parts) +
                  ". Counts, timings and the close are incomplete: capture on the client or "
                  "server host, or check the capture point for drops.", sorted(frames), None,
                  details)
