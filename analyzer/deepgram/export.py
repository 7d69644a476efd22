"""Audio export: one direction of a session's binary payloads as a playable file.

The troubleshooting guide's "write the audio data to a file and play it back", from
a capture.  `plan_export()` decides from the analysed session (what the report
says: endpoint, encoding, sample rate, channels, sniffed container) how the audio
can be written; `AudioWriter` is then fed the payload bytes of that session in
capture order (a second pass of the pipeline) and streams them to a file object:

* raw PCM-like audio (linear16, linear32, mulaw, alaw) gets a WAV header, written
  first with placeholder sizes and patched when the writer is closed;
* containerised audio (WAV, Ogg, WebM, FLAC, MP3, AAC, AMR) is written as sent;
  a WAV whose header sizes disagree with the bytes captured (streaming writers put
  0 or 0xFFFFFFFF there) gets its RIFF and data sizes corrected;
* bytes missing from the capture are filled with silence of the same length
  (zeros; 0xFF for mu-law, 0xD5 for A-law) and counted;
* permessage-deflate payloads are inflated first (the file holds what the
  application sent, not the wire bytes).

Memory stays bounded whatever the length of the audio: nothing is kept but the
first few bytes for sniffing and one decompression buffer.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Optional, Union

from ..http.body_content import loads_json
from ..model import CLIENT, DIRECTION_NAMES, SERVER, AudioSummary, Session
from ..websocket.frames import RSV1
from . import endpoints as ep
from .audio import (CONTAINER_NAMES, WAVE_PCM, extension_for, parse_wav_header, sniff,
                    wav_header, wav_params_for)
from .params import query_value, to_int

DIRECTIONS = {"client": CLIENT, "server": SERVER}

# Deepgram's documented defaults for the audio it sends (speak: query parameters;
# agent: Settings audio.output).  mu-law/A-law default to telephone rate.
SERVER_DEFAULT_ENCODING = "linear16"
SERVER_DEFAULT_RATES = {"linear16": 24000, "mulaw": 8000, "alaw": 8000}

SILENCE = {"mulaw": 0xFF, "alaw": 0xD5}  # the byte that decodes to 0 amplitude
# Bytes of the first audio payload the format sniffer (deepgram/audio.py sniff) looks at.
AUDIO_SNIFF_BYTES = 64
_BLOCK = 64 * 1024
_DEFLATE_TRAILER = b"\x00\x00\xff\xff"
_U32 = 0xFFFFFFFF


def default_direction(endpoint: Optional[str]) -> int:
    """Whose audio is interesting: the server's for text-to-speech, else the client's."""
    return SERVER if endpoint in ep.TTS else CLIENT


@dataclass
class ExportPlan:
    direction: int
    # True: the first payload is a container (write as sent); False: raw samples
    # (wrap in WAV); None: not known from the analysis (server audio): sniff it.
    container: Optional[bool]
    format: Optional[str] = None  # sniffed container (CONTAINER_NAMES key), when known
    codec: Optional[str] = None
    encoding: Optional[str] = None
    sample_rate: Optional[int] = None
    channels: int = 1
    # Why raw audio cannot be wrapped (None when it can): one sentence.
    problem: Optional[str] = None
    notes: list[str] = field(default_factory=list)  # e.g. defaults assumed


def has_audio(session: Session, direction: int) -> bool:
    counts = session.frames[direction]
    return counts.binary - counts.empty_binary > 0


def plan_export(session: Session, direction: int) -> ExportPlan:
    """How `direction`'s binary payloads of an analysed session can be written."""
    if direction == CLIENT:
        return _client_plan(session)
    return _server_plan(session)


def _client_plan(session: Session) -> ExportPlan:
    # No Deepgram layer (no handshake, no frames): nothing declared, nothing sniffed.
    audio = session.audio if session.audio is not None else AudioSummary()
    raw = ExportPlan(CLIENT, False, encoding=audio.encoding,
                     sample_rate=audio.sample_rate, channels=audio.channels or 1)
    raw.problem = _wrap_problem(session, raw, "the request")
    if audio.container and audio.format is not None:
        head = bytes.fromhex(audio.first_payload.head) if audio.first_payload else b""
        weak = audio.format in ("mp3", "aac") and head[:3] != b"ID3"
        if weak and raw.problem is None:
            # Only a frame sync matched, which raw PCM often starts with; the request
            # declares a raw encoding, and that is how Deepgram decodes it too.
            raw.notes.append(f"the first bytes look like an {CONTAINER_NAMES[audio.format]} "
                             f"frame header, but the request declares encoding={raw.encoding}")
            return raw
        return ExportPlan(CLIENT, True, audio.format, audio.codec)
    return raw


def _server_plan(session: Session) -> ExportPlan:
    endpoint = session.endpoint or ep.endpoint_for_path(session.handshake.path)
    plan = ExportPlan(SERVER, None)
    where = "the request"
    if endpoint == ep.SPEAK:
        query = session.handshake.query
        plan.encoding = query_value(query, "encoding")
        plan.sample_rate = to_int(query_value(query, "sample_rate"))
        if not session.midstream:
            _server_defaults(plan, "the request")
    elif endpoint == ep.SPEAK_V2:
        # /v2/speak: linear16 by default, sample_rate by default the model's native rate,
        # which nothing in the capture states (dg:/docs/flux-tts).
        query = session.handshake.query or {}
        plan.encoding = query_value(query, "encoding") or SERVER_DEFAULT_ENCODING
        plan.sample_rate = to_int(query_value(query, "sample_rate"))
        if plan.sample_rate is None:
            plan.problem = ("/v2/speak sends the model's native sample rate when the request sets "
                            "none, and the capture does not say which it is; pass sample_rate to "
                            "export this audio")
            return plan
    elif endpoint == ep.AGENT:
        where = "the Settings message"
        output = _agent_output(session)
        if output is not None:
            plan.encoding, plan.sample_rate = output
            _server_defaults(plan, "Settings")
    plan.problem = _wrap_problem(session, plan, where)
    return plan


def _server_defaults(plan: ExportPlan, where: str) -> None:
    if plan.encoding is None:
        plan.encoding = SERVER_DEFAULT_ENCODING
        plan.notes.append(f"{where} sets no encoding: Deepgram's default {plan.encoding} assumed")
    if plan.sample_rate is None and plan.encoding in SERVER_DEFAULT_RATES:
        plan.sample_rate = SERVER_DEFAULT_RATES[plan.encoding]
        plan.notes.append(f"{where} sets no sample_rate: Deepgram's default {plan.sample_rate} Hz "
                          "assumed")


def _agent_output(session: Session) -> Optional[tuple[Optional[str], Optional[int]]]:
    """(encoding, sample_rate) of audio.output in the client's Settings message, if captured."""
    for m in session.messages:
        if m.direction != CLIENT or not m.text:
            continue
        try:
            obj = loads_json(m.text)
        except ValueError:
            continue
        if not isinstance(obj, dict) or obj.get("type") != "Settings":
            continue
        audio = obj.get("audio") if isinstance(obj.get("audio"), dict) else {}
        out = audio.get("output") if isinstance(audio.get("output"), dict) else {}
        enc, rate = out.get("encoding"), out.get("sample_rate")
        return (enc if isinstance(enc, str) else None,
                rate if isinstance(rate, int) and not isinstance(rate, bool) else None)
    return None


def _wrap_problem(session: Session, plan: ExportPlan, where: str) -> Optional[str]:
    enc = plan.encoding
    if enc is None:
        if session.midstream:
            return ("the audio has no container header and the capture began mid-stream, so the "
                    "request that names its encoding and sample_rate is not in it")
        return (f"the audio has no container header and {where} sets no encoding, so its "
                "format is unknown (raw audio needs encoding and sample_rate)")
    if wav_params_for(enc) is None:
        return (f"encoding={enc} is headerless {enc} data without a container: there is no "
                "playable file format to write it in (only linear16, linear32, mulaw and alaw "
                "can be wrapped in WAV)")
    if not plan.sample_rate or plan.sample_rate <= 0:
        return f"encoding={enc} needs a sample_rate and {where} sets none"
    if plan.channels <= 0:
        return f"channels={plan.channels} is not a channel count"
    return None


# Deepgram documents linear32 both as 32-bit little-endian floating point (dg:/docs/encoding)
# and as 32-bit signed little-endian PCM (cl:2025/10/16, Flux): the WAV says which one
# was assumed, and the note says it may be the other.
LINEAR32_NOTE = ("linear32 written as 32-bit signed integer PCM; Deepgram's documentation "
                 "also calls it 32-bit float (unconfirmed which), so if it plays as loud noise "
                 "the client sent float samples")


@dataclass
class ExportResult:
    format: str  # e.g. "WAV (linear16, 16000 Hz, 1 channel)"
    extension: str  # ".wav", ".ogg", ...
    file_bytes: int
    audio_bytes: int  # payload bytes written (silence fills included, header excluded)
    seconds: Optional[float]  # None when the container's duration is not known
    missing_bytes: int = 0  # filled with silence
    missing_compressed: int = 0  # compressed bytes lost: what they held cannot be recovered
    notes: list[str] = field(default_factory=list)
    error: Optional[str] = None  # set when nothing usable was written


class _Inflater:
    """RFC 7692 decompression that streams its output (no per-message retention)."""

    def __init__(self, no_context_takeover: bool):
        self.no_context_takeover = no_context_takeover
        self._d = None
        self.broken = False  # bytes of the current message are missing
        self.failures = 0  # messages whose compressed data would not inflate

    def begin(self) -> None:
        self.broken = False
        if self._d is None or self.no_context_takeover:
            # A 15-bit window inflates anything sent with a smaller one.
            self._d = zlib.decompressobj(-15)

    def feed(self, data, out) -> None:
        if self.broken or self._d is None:
            return
        d = self._d
        try:
            while data:
                piece = d.decompress(data, _BLOCK)
                if piece:
                    out(piece)
                data = d.unconsumed_tail
            while True:  # a full output buffer may hide more
                piece = d.decompress(b"", _BLOCK)
                if not piece:
                    break
                out(piece)
        except zlib.error:
            self.failures += 1
            self.lose()

    def end(self, out) -> None:
        if self.broken:
            return
        self.feed(_DEFLATE_TRAILER, out)
        if self._d is not None and self._d.eof:
            self._d = None  # the sender ended its deflate stream; a new one follows

    def lose(self) -> None:
        """Bytes of this message are missing: nothing more of it (or, with context
        takeover, of what refers back to it) can be inflated reliably."""
        self.broken = True
        self._d = None


def _unambiguous(s, head: bytes) -> bool:
    """A container recognised by a file magic, not just by a frame sync."""
    return s.format in ("wav", "ogg", "flac", "webm", "amr", "amr-wb") or head[:3] == b"ID3"


class AudioWriter:
    """Streams one session direction's binary payloads to `out` per an ExportPlan.

    Feed `payload(frame, chunk)` for every binary (and binary-continuation) payload
    piece in order: `frame` the websocket Frame it belongs to, `chunk` bytes-like or
    an int (that many payload bytes missing from the capture).  A frame's pieces
    must add up to frame.length; a zero-length frame may be fed as b"".  Then
    `close()` patches the header and returns the ExportResult.  `out` must be
    seekable (a real file) and opened for writing in binary mode.
    """

    def __init__(self, out: BinaryIO, plan: ExportPlan, deflate: Optional[dict] = None):
        self.out = out
        self.plan = plan
        self._inflater = None
        if deflate is not None:
            side = DIRECTION_NAMES[plan.direction]
            self._inflater = _Inflater(bool((deflate or {}).get(f"{side}_no_context_takeover")))
        self._decided = False
        self._wrap = False  # raw samples behind a WAV header of ours
        self._format = plan.format
        self._codec = plan.codec
        self._head = bytearray()  # the first bytes written (container header)
        self._header_len = 0
        self._written = 0  # audio bytes written after our header
        self.missing = 0
        self.missing_compressed = 0
        self.error: Optional[str] = None
        # message / frame tracking
        self._frame = None
        self._frame_got = 0
        self._in_message = False
        self._compressed = False
        self._fill = 0

    # -- input -------------------------------------------------------------------

    def payload(self, frame, chunk: Union[bytes, bytearray, memoryview, int]) -> None:
        if frame is not self._frame:
            self._frame = frame
            self._frame_got = 0
            if frame.opcode != 0 or not self._in_message:
                self._start_message(frame)
        if isinstance(chunk, int):
            self._frame_got += chunk
            self._missing(chunk)
        else:
            self._frame_got += len(chunk)
            if chunk:
                if self._compressed:
                    self._inflater.feed(chunk, self._data)
                else:
                    self._data(chunk)
        if frame.fin and self._frame_got >= frame.length:
            self._end_message()

    def _start_message(self, frame) -> None:
        if self._in_message:
            self._end_message()
        self._in_message = True
        self._compressed = bool(frame.rsv & RSV1) and self._inflater is not None
        if self._compressed:
            self._inflater.begin()

    def _end_message(self) -> None:
        if not self._in_message:
            return
        if self._compressed:
            self._inflater.end(self._data)
        self._in_message = False
        self._compressed = False

    def _missing(self, n: int) -> None:
        if n <= 0:
            return
        if self._compressed:
            self.missing_compressed += n
            self._inflater.lose()
            return
        self.missing += n
        if not self._decided:
            # Nothing to sniff yet: a leading hole is filled once the format is known.
            self._fill += n
            return
        self._silence(n)

    # -- output ------------------------------------------------------------------

    def _decide(self, first) -> None:
        self._decided = True
        plan = self.plan
        container = plan.container
        if container is None:
            head = bytes(first[:AUDIO_SNIFF_BYTES])
            s = sniff(head)
            container = s.container
            if container and plan.problem is None and not _unambiguous(s, head):
                # A bare MPEG/ADTS frame sync is also how plenty of PCM starts (a small
                # negative linear16 sample is FF Fx): the declared raw encoding wins.
                container = False
            if container:
                self._format, self._codec = s.format, s.codec
        if container:
            self._wrap = False
        elif plan.problem:
            self.error = plan.problem
        else:
            self._wrap = True
            tag, width = wav_params_for(plan.encoding)
            header = wav_header(plan.sample_rate, plan.channels, width, 0, tag)
            self.out.write(header)
            self._header_len = len(header)
        if self._fill and self.error is None:
            fill, self._fill = self._fill, 0
            self._silence(fill)

    def _data(self, data) -> None:
        if not self._decided:
            self._decide(data)
        if self.error is not None:
            return
        if len(self._head) < 256:
            self._head += bytes(data[:256 - len(self._head)])
        self.out.write(data)
        self._written += len(data)

    def _silence(self, n: int) -> None:
        if self.error is not None:
            return
        byte = SILENCE.get(self.plan.encoding or "", 0) if self._wrap else 0
        block = bytes([byte]) * min(n, _BLOCK)
        while n > 0:
            piece = block if n >= len(block) else block[:n]
            self.out.write(piece)
            self._written += len(piece)
            if len(self._head) < 256:
                self._head += piece[:256 - len(self._head)]
            n -= len(piece)

    def close(self) -> ExportResult:
        self._end_message()
        plan = self.plan
        notes = list(plan.notes)
        if self._inflater is not None and self._inflater.failures:
            notes.append(f"{self._inflater.failures} compressed message(s) could not be inflated "
                         "and are left out")
        if not self._decided:
            if self._fill:
                # Only holes: the format is whatever the analysis said.
                self._decide(b"")
            else:
                self.error = self.error or "no audio payload bytes in this direction"
        if self.error is not None:
            return ExportResult("", extension_for(None), 0, 0, None, self.missing,
                                self.missing_compressed, notes, self.error)
        if self._wrap:
            return self._close_wav(notes)
        return self._close_container(notes)

    def _close_wav(self, notes: list[str]) -> ExportResult:
        plan = self.plan
        tag, width = wav_params_for(plan.encoding)
        if plan.encoding == "linear32":
            notes.append(LINEAR32_NOTE)
        data_len = self._written
        if data_len & 1:
            self.out.write(b"\x00")  # RIFF chunks are word-aligned
        limit = _U32 - self._header_len - 1
        if data_len > limit:
            notes.append("more than 4 GiB of audio: the WAV header sizes are capped (most "
                         "players read to the end of the file anyway)")
        self.out.seek(0)
        self.out.write(wav_header(plan.sample_rate, plan.channels, width, min(data_len, limit), tag))
        self.out.seek(0, 2)
        size = self.out.tell()
        block = plan.channels * width
        seconds = (data_len // block) / plan.sample_rate
        chans = f"{plan.channels} channel" + ("s" if plan.channels != 1 else "")
        fmt = f"WAV ({plan.encoding}, {plan.sample_rate} Hz, {chans})"
        return ExportResult(fmt, ".wav", size, data_len, seconds, self.missing,
                            self.missing_compressed, notes)

    def _close_container(self, notes: list[str]) -> ExportResult:
        fmt_key = self._format
        name = CONTAINER_NAMES.get(fmt_key or "", fmt_key or "container")
        label = f"{name} ({self._codec})" if self._codec else name
        seconds = None
        if fmt_key == "wav":
            seconds = self._fix_wav_container(notes)
            label = "WAV as sent"
            wav = parse_wav_header(bytes(self._head))
            if wav is not None:
                enc = wav.encoding or f"format {wav.format_tag}"
                chans = f"{wav.channels} channel" + ("s" if wav.channels != 1 else "")
                label = f"WAV as sent ({enc}, {wav.sample_rate} Hz, {chans})"
        else:
            label += " as sent"
        self.out.seek(0, 2)
        size = self.out.tell()
        return ExportResult(label, extension_for(fmt_key), size, self._written, seconds,
                            self.missing, self.missing_compressed, notes)

    def _fix_wav_container(self, notes: list[str]) -> Optional[float]:
        """Correct the sent header's RIFF/data sizes if they do not match; the duration."""
        head = bytes(self._head)
        wav = parse_wav_header(head)
        if wav is None or wav.data_offset is None or wav.data_offset > len(head):
            return None
        total = self._written
        actual = max(0, total - wav.data_offset)
        declared = struct.unpack_from("<I", head, wav.data_offset - 4)[0]
        if declared != actual and total <= _U32:
            self.out.seek(4)
            self.out.write(struct.pack("<I", min(total - 8, _U32)))
            self.out.seek(wav.data_offset - 4)
            self.out.write(struct.pack("<I", actual))
            self.out.seek(0, 2)
            notes.append(f"the WAV header declared {declared} data bytes, {actual} were captured: "
                         "header sizes corrected")
        block = wav.channels * (wav.bits_per_sample // 8)
        if block <= 0 or wav.sample_rate <= 0:
            return None
        if wav.format_tag != WAVE_PCM and wav.encoding is None:
            return None  # compressed WAV (e.g. ADPCM): bytes do not give frames
        return (actual // block) / wav.sample_rate


__all__ = ["DIRECTIONS", "ExportPlan", "ExportResult", "AudioWriter", "plan_export",
           "default_direction", "has_audio"]
