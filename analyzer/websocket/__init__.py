"""WebSocket (RFC 6455) frames and messages, with permessage-deflate (RFC 7692).

Sans-I/O: `FrameParser` turns one direction's reassembled TCP stream into
`Frame`s, `MessageAssembler` turns frames into `Message`s; both report protocol
violations as anomaly tuples `(kind, frame_no, ts, detail)` and never raise on
captured input.
"""
from .frames import (OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
                     OPCODE_NAMES, RSV1, Frame, FrameParser, find_frame_sync, find_stream_start,
                     frame_run_evidence, midstream_evidence_enough, unmask)
from .messages import (CLOSE_CODE_NAMES, Message, MessageAssembler, close_code_name,
                       close_code_valid)

__all__ = [
    "OP_CONTINUATION", "OP_TEXT", "OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG",
    "OPCODE_NAMES", "RSV1", "CLOSE_CODE_NAMES",
    "Frame", "FrameParser", "find_frame_sync", "find_stream_start", "frame_run_evidence",
    "midstream_evidence_enough", "unmask",
    "Message", "MessageAssembler", "close_code_name", "close_code_valid",
]
