"""Fuzz the capture reader (pcap / pcapng / gzip) and the link/IP/TCP decoder.

Property: open_capture() raises nothing but CaptureError; iterating the packets never
raises; `truncated` is None or (byte offset, one-line reason); packet_count matches what
was yielded; every packet decodes (or is counted) without raising.
"""
import os
import tempfile

from _common import instrument, main

with instrument():
    from analyzer.capture import CaptureError, PacketDecoder, open_capture

_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
_FD, _PATH = tempfile.mkstemp(prefix="dgcap-fuzz-pcap-", dir=_DIR)
os.close(_FD)


def check_file(path: str) -> None:
    try:
        cap = open_capture(path)
    except CaptureError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        return
    decoder = PacketDecoder()
    yielded = 0
    last_frame = 0
    with cap:
        for frame_no, ts, linktype, data in cap.packets():
            yielded += 1
            assert frame_no > last_frame, (frame_no, last_frame)
            last_frame = frame_no
            assert isinstance(ts, float) and isinstance(linktype, int)
            segment = decoder.decode(frame_no, linktype, data)
            if segment is not None:
                assert len(segment) == 9 and segment[8] >= 0
    assert cap.packet_count == yielded, (cap.packet_count, yielded)
    assert decoder.packets == yielded
    if cap.truncated is not None:
        offset, why = cap.truncated
        assert isinstance(offset, int) and offset >= 0
        assert isinstance(why, str) and why and "\n" not in why


def TestOneInput(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    check_file(_PATH)


if __name__ == "__main__":
    try:
        main(TestOneInput)
    finally:
        os.unlink(_PATH)
