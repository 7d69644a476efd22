"""The capture layer: capture files -> numbered packets -> TCP segments.

    cap = open_capture(path)              # CaptureError for anything that is not a readable capture
    dec = PacketDecoder()
    for frame_no, ts, linktype, data in cap.packets():
        seg = dec.decode(frame_no, linktype, data, ts)

or, without cutting each packet out of the file's blocks (what the pipeline does):

    for frame_no, ts, linktype, buf, start, end in cap.spans():
        seg = dec.decode(frame_no, linktype, buf, ts, start, end)
"""
from .decode import PacketDecoder, format_address, tunnel_layers
from .reader import STDIN, Capture, CaptureError, capture_files, is_pipe, looks_like_capture, open_capture

__all__ = ["open_capture", "is_pipe", "STDIN", "capture_files", "looks_like_capture", "Capture", "CaptureError",
           "PacketDecoder", "format_address", "tunnel_layers"]
