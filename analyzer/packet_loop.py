"""The pipeline's packet loop: capture records -> link/IP/TCP decoding -> TCP tracking.

It is the one loop every packet of a capture file passes through, so it lives in a module
of its own that the compiled build compiles (analyzer/build_kind.py HOT_MODULES): typed
as the decoder and tracker classes, its calls to them are direct C calls instead of
Python-level calls, which is most of what an audio packet costs between the layers.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from .capture.decode import PacketDecoder
from .tcp.tracker import TcpTracker


class PacketLoop:
    """Feeds packets to `decoder` and the TCP segments it finds to `tracker`.

    clock: any object with a `last_time` attribute, set to the time of each TCP packet
    before the tracker sees it (the pipeline's view of "now" when a connection ends).
    `frame_no` is the frame being read (shards date what they record by it), `first_time`
    and `last_time` the capture's times so far (None before the first packet).
    """

    def __init__(self, decoder: PacketDecoder, tracker: TcpTracker, clock: Any,
                 signal_point: Optional[Callable[[], None]] = None) -> None:
        self.decoder = decoder
        self.tracker = tracker
        self.clock = clock
        self.frame_no = 0
        self.first_time: Optional[float] = None
        self.last_time: Optional[float] = None
        # Called every 1024 frames by run(): an interpreted function, where CPython runs the
        # signal handlers that compiled code never runs (see pipeline._signal_point).
        self.signal_point = signal_point

    def packet(self, frame_no: int, ts: float, linktype: int, data: Any, start: int = 0,
               end: int = -1) -> None:
        """One packet: data[start:end] (end -1: to the end of data)."""
        self.frame_no = frame_no
        if self.first_time is None:
            self.first_time = ts
        self.last_time = ts
        seg = self.decoder.decode(frame_no, linktype, data, ts, start, end)
        if seg is not None:
            self.clock.last_time = ts
            self.tracker.segment(frame_no, ts, seg)

    def run(self, spans: Iterable[tuple[int, float, int, Any, int, int]],
            progress: Optional[Callable[[int], None]] = None) -> None:
        """packet() for each (frame_no, ts, linktype, buf, start, end) of `spans`
        (Capture.spans(): the packet is buf[start:end]).  progress(frame_no), when given,
        is called every 16384 frames.  `frame_no`, `first_time` and `last_time` are up to
        date when it returns or raises."""
        decoder = self.decoder
        tracker = self.tracker
        clock = self.clock
        signal_point = self.signal_point
        ts = 0.0
        seen = False
        try:
            for frame_no, ts, linktype, buf, start, end in spans:
                if not seen:
                    seen = True
                    if self.first_time is None:
                        self.first_time = ts
                self.frame_no = frame_no
                seg = decoder.decode(frame_no, linktype, buf, ts, start, end)
                if seg is not None:
                    clock.last_time = ts
                    tracker.segment(frame_no, ts, seg)
                if not (frame_no & 0x3FF) and signal_point is not None:
                    signal_point()
                    if progress is not None and not (frame_no & 0x3FFF):
                        progress(frame_no)
        finally:
            if seen:
                self.last_time = ts
