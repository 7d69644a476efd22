"""Findings about the capture file itself: what could not be read or decoded."""
from __future__ import annotations

from ..model import ERROR, INFO, WARNING, CaptureReport, Finding

# Packets of an undecoded encapsulation worth a finding when sessions were found anyway.
UNDECODED_REPORT_MIN = 10


def capture_findings(cap, decoder, report: CaptureReport) -> list[Finding]:
    out: list[Finding] = []
    if cap.truncated is not None:
        offset, why = cap.truncated
        out.append(Finding("capture-truncated", ERROR,
                           f"The capture file is cut or corrupt at byte {offset}: {why}. "
                           f"The report covers the {cap.packet_count} packets before it.",
                           [cap.packet_count] if cap.packet_count else [], report.last_time,
                           {"offset": offset, "packets_read": cap.packet_count}))
    if report.stats.get("interrupted"):
        out.append(Finding("analysis-interrupted", ERROR,
                           f"Analysis was interrupted after {cap.packet_count} packets: the report is incomplete.",
                           [], report.last_time, {"packets_read": cap.packet_count}))
    st = decoder.stats
    fragments = decoder.fragments
    if fragments.unreassembled:
        out.append(_fragment_finding(
            "ip-fragments", fragments.unreassembled, decoder.fragment_frames,
            f"IP fragments could not be reassembled (the rest of their datagram is not in the "
            f"capture, or came more than {fragments.timeout:g} s later); TCP data inside them is "
            f"missing (first frames: {{frames}}).",
            {"reassembled_datagrams": fragments.reassembled}))
    if fragments.conflicts:
        out.append(_fragment_finding(
            "ip-fragment-conflict", fragments.conflicts, fragments.conflict_frames,
            "IP fragments overlap an earlier fragment of the same datagram with different bytes "
            "(the first copy was kept; a receiver may have kept the other): frames {frames}.", {}))
    for name, (count, first_frame) in sorted(decoder.undecoded.items()):
        # A stray packet is not worth a line; a stream of them (or nothing else) is.
        if count < UNDECODED_REPORT_MIN and report.sessions:
            continue
        out.append(Finding("undecoded-encapsulation", WARNING,
                           f"{count} packets are {name}, which dgcap does not decode: any "
                           f"WebSocket traffic inside them is not analysed (first: frame "
                           f"{first_frame}).", [first_frame], None,
                           {"encapsulation": name, "count": count}))
    if st.get("snaplen_truncated"):
        out.append(Finding("snaplen-truncated", WARNING,
                           f"{st['snaplen_truncated']} packets were cut by the capture's snap length (a "
                           "headers-only capture). Bytes, rates and silences of TLS connections are "
                           "measured from TCP lengths and sequence numbers, and their missing bytes are "
                           "not reported per connection; payload in plain-text connections is reported "
                           "as holes. Capture with -s 0 to keep whole packets.",
                           [], None, {"count": st["snaplen_truncated"]}))
    unsupported = st.get("unsupported_linktypes") or {}
    if unsupported:
        desc = ", ".join(f"{lt} ({n} packets)" for lt, n in sorted(unsupported.items()))
        out.append(Finding("unsupported-linktype", WARNING,
                           f"Packets with unsupported link types were skipped: {desc}.", [], None,
                           {"linktypes": {str(k): v for k, v in unsupported.items()}}))
    tcp = report.stats.get("tcp") or {}
    evicted, over = tcp.get("connections_evicted", 0), tcp.get("connections_over_limit", 0)
    if evicted or over:
        out.append(Finding("connection-limit", WARNING,
                           f"More than {tcp['max_connections']} TCP connections were open at once: "
                           f"{evicted} half-open or idle ones (no payload yet) were closed early and "
                           f"{over} new ones were not analysed (limit: Options.max_connections).",
                           [], None, {"max_connections": tcp["max_connections"], "evicted": evicted,
                                      "not_analysed": over}))
    overflow = report.stats.get("http_header_overflow")
    if overflow:
        streams = ", ".join(map(str, overflow["tcp_streams"]))
        out.append(Finding("http-header-overflow", WARNING,
                           f"{overflow['count']} HTTP request head(s) grew past {overflow['limit']} bytes "
                           f"without ending (tcp.stream {streams}); those connections were not analysed.",
                           list(overflow["frames"]), None,
                           {"count": overflow["count"], "limit": overflow["limit"],
                            "tcp_streams": list(overflow["tcp_streams"])}))
    if st.get("malformed"):
        out.append(Finding("malformed-packets", INFO,
                           f"{st['malformed']} packets had malformed or short headers and were skipped.",
                           [], None, {"count": st["malformed"]}))
    return out


def _fragment_finding(finding_id: str, count: int, frames, text: str, details: dict) -> Finding:
    """`count` fragments, the first frames listed where `text` says {frames}."""
    frames = list(frames)
    message = f"{count} " + text.format(frames=", ".join(map(str, frames[:10])))
    return Finding(finding_id, WARNING, message, frames[:20], None, {"count": count, **details})
