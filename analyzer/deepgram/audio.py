"""Audio facts a capture can prove about the client's stream.

What the first binary payload is (container or headerless), how many seconds of
audio were sent, how fast compared to real time, in which chunk sizes; plus a WAV
header writer so raw audio can be exported playable.  Sans-I/O: callers hand in
the first <=64 bytes of the first payload and (time, size) of every audio message.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Optional

from mypy_extensions import mypyc_attr

from ..model import AudioPace, AudioWindow, SizeStats

# Bytes per sample of the raw encodings whose duration follows from their size.
# Compressed raw encodings (opus, speex, g729, amr-*) have no fixed rate per byte.
SAMPLE_WIDTH = {"linear16": 2, "linear32": 4, "mulaw": 1, "alaw": 1}
RAW_ENCODINGS = frozenset({"linear16", "linear32", "alaw", "mulaw", "amr-nb", "amr-wb",
                           "opus", "speex", "g729"})

# Deepgram's pacing and chunking guidance for live audio.
MAX_REALTIME_FACTOR = 1.25
CHUNK_MS_MIN, CHUNK_MS_MAX = 20.0, 250.0
WINDOW_SECONDS = 10.0

CONTAINER_NAMES = {"wav": "WAV", "ogg": "Ogg", "flac": "FLAC", "webm": "WebM/Matroska",
                   "mp3": "MP3", "aac": "AAC (ADTS)", "amr": "AMR", "amr-wb": "AMR-WB"}

# WAV format tags
WAVE_PCM, WAVE_FLOAT, WAVE_ALAW, WAVE_MULAW, WAVE_EXTENSIBLE = 1, 3, 6, 7, 0xFFFE


# A Python class even when compiled: reports holding it are pickled (-j workers), and mypyc's
# frozen classes do not unpickle.
@mypyc_attr(native_class=False)
@dataclass(frozen=True)
class WavInfo:
    format_tag: int
    channels: int
    sample_rate: int
    bits_per_sample: int
    data_offset: Optional[int]  # where the samples start; None when beyond the sniffed bytes

    @property
    def encoding(self) -> Optional[str]:
        """The Deepgram encoding this WAV's samples correspond to."""
        if self.format_tag in (WAVE_PCM, WAVE_EXTENSIBLE):
            return {16: "linear16", 32: "linear32"}.get(self.bits_per_sample)
        return {WAVE_MULAW: "mulaw", WAVE_ALAW: "alaw"}.get(self.format_tag)

    def to_json(self) -> dict:
        return {"format_tag": self.format_tag, "channels": self.channels,
                "sample_rate": self.sample_rate, "bits_per_sample": self.bits_per_sample,
                "data_offset": self.data_offset}


@mypyc_attr(native_class=False)
@dataclass(frozen=True)
class Sniff:
    format: Optional[str]  # a CONTAINER_NAMES key, or None: no container header recognised
    codec: Optional[str] = None  # what the container says inside, when the first bytes tell
    wav: Optional[WavInfo] = None

    @property
    def container(self) -> bool:
        return self.format is not None

    @property
    def name(self) -> str:
        if self.format is None:
            return "headerless (raw) audio"
        name = CONTAINER_NAMES[self.format]
        return f"{name} ({self.codec})" if self.codec else name


def sniff(data: bytes) -> Sniff:
    """Recognise a container from the first bytes of the first audio payload."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return Sniff("wav", wav=parse_wav_header(data))
    if data[:4] == b"OggS":
        return Sniff("ogg", codec=_ogg_codec(data))
    if data[:4] == b"fLaC":
        return Sniff("flac")
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return Sniff("webm", codec=None)
    if data[:9] == b"#!AMR-WB\n":
        return Sniff("amr-wb")
    if data[:6] == b"#!AMR\n":
        return Sniff("amr")
    if data[:3] == b"ID3":
        return Sniff("mp3")
    if len(data) >= 3 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0:
        if _is_adts(data):
            return Sniff("aac")
        if _is_mpeg_audio_frame(data):
            return Sniff("mp3")
    return Sniff(None)


def _ogg_codec(data: bytes) -> Optional[str]:
    for magic, codec in ((b"OpusHead", "opus"), (b"\x01vorbis", "vorbis"),
                         (b"Speex   ", "speex"), (b"\x7fFLAC", "flac")):
        if magic in data:
            return codec
    return None


def _is_adts(data: bytes) -> bool:
    # ADTS sync: 12 one-bits, layer bits 00
    return (data[1] & 0xF6) == 0xF0


def _is_mpeg_audio_frame(data: bytes) -> bool:
    # A bare frame sync (11 one-bits) also starts mu-law silence (0xFF 0xFF...) and
    # some PCM, so the rest of the header must be valid too.
    version = (data[1] >> 3) & 0x3
    layer = (data[1] >> 1) & 0x3
    bitrate = data[2] >> 4
    rate = (data[2] >> 2) & 0x3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def parse_wav_header(data: bytes) -> Optional[WavInfo]:
    """fmt fields and data offset from a RIFF/WAVE header (within the bytes given)."""
    pos = 12
    fmt = None
    data_offset = None
    while pos + 8 <= len(data):
        chunk_id, chunk_len = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt " and body + 16 <= len(data):
            fmt = struct.unpack_from("<HHIIHH", data, body)
        elif chunk_id == b"data":
            data_offset = body
            break
        pos = body + chunk_len + (chunk_len & 1)
    if fmt is None:
        return None
    tag, channels, rate, _byte_rate, _align, bits = fmt
    return WavInfo(tag, channels, rate, bits, data_offset)


def bytes_per_second(encoding: Optional[str], sample_rate: Optional[int],
                     channels: Optional[int]) -> Optional[float]:
    width = SAMPLE_WIDTH.get(encoding or "")
    if not width or not sample_rate or sample_rate <= 0:
        return None
    return float(sample_rate * (channels or 1) * width)


# --- export -----------------------------------------------------------------------

def wav_params_for(encoding: Optional[str]) -> Optional[tuple[int, int]]:
    """(WAV format tag, sample width) to wrap raw Deepgram audio; None if not wrappable.

    linear32 is wrapped as 32-bit signed integer PCM (tag 1); Deepgram's docs call it
    float in one place and signed integer in another (unconfirmed which), so the export
    says so in a note (export.LINEAR32_NOTE).
    """
    return {"linear16": (WAVE_PCM, 2), "linear32": (WAVE_PCM, 4),
            "mulaw": (WAVE_MULAW, 1), "alaw": (WAVE_ALAW, 1)}.get(encoding or "")


def wav_header(sample_rate: int, channels: int, sample_width: int, data_len: int,
               fmt: int = WAVE_PCM) -> bytes:
    """A RIFF/WAVE header for `data_len` bytes of interleaved samples that follow it.

    Non-PCM tags (float 3, A-law 6, mu-law 7) get the 18-byte fmt chunk and the
    `fact` chunk the format requires.  RIFF chunks are word-aligned: when data_len
    is odd the caller appends one zero byte after the samples (counted here).
    """
    block_align = channels * sample_width
    pcm = fmt == WAVE_PCM
    fmt_body = struct.pack("<HHIIHH", fmt, channels, sample_rate, sample_rate * block_align,
                           block_align, sample_width * 8)
    fact = b""
    if not pcm:
        fmt_body += struct.pack("<H", 0)
        frames = data_len // block_align if block_align else 0
        fact = b"fact" + struct.pack("<II", 4, frames)
    pad = data_len & 1
    riff_len = 4 + 8 + len(fmt_body) + len(fact) + 8 + data_len + pad
    return (b"RIFF" + struct.pack("<I", riff_len) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body
            + fact + b"data" + struct.pack("<I", data_len))


_EXTENSIONS = {
    "wav": ".wav", "ogg": ".ogg", "flac": ".flac", "webm": ".webm", "mp3": ".mp3",
    "aac": ".aac", "amr": ".amr", "amr-wb": ".awb", "ogg-opus": ".ogg",
    # raw PCM-like encodings are exported wrapped in a WAV header
    "linear16": ".wav", "linear32": ".wav", "mulaw": ".wav", "alaw": ".wav",
}


def extension_for(format: Optional[str]) -> str:
    """File extension for exported audio of a sniffed container or a raw encoding.

    Raw compressed packets (opus, speex, g729, amr without its file header) have no
    playable file form of their own: ".raw".
    """
    if not format:
        return ".raw"
    return _EXTENSIONS.get(format.lower(), ".raw")


# --- pacing and chunking ----------------------------------------------------------

class _SizeHistogram:
    """Counts of chunk sizes with bounded memory.

    Keyed by size >> shift: exact while there are few distinct sizes (the usual
    case: fixed-size chunks), and coarsened by halving when there are too many.
    """
    MAX_KEYS: ClassVar[int] = 4096

    def __init__(self) -> None:
        self.shift = 0
        self.counts: dict[int, int] = {}
        self.n = 0
        self.min: Optional[int] = None
        self.max: Optional[int] = None

    def add(self, size: int) -> None:
        # Once per audio chunk: comparisons instead of min()/max() calls, and a size already
        # counted (nearly every chunk) returns before the coarsening check.
        self.n += 1
        if self.min is None or size < self.min:
            self.min = size
        if self.max is None or size > self.max:
            self.max = size
        key = size >> self.shift
        counts = self.counts
        if key in counts:
            counts[key] += 1
            return
        counts[key] = 1
        while len(self.counts) > self.MAX_KEYS:
            self.shift += 1
            merged: dict[int, int] = {}
            for k, c in self.counts.items():
                merged[k >> 1] = merged.get(k >> 1, 0) + c
            self.counts = merged

    def median(self) -> Optional[float]:
        if not self.n:
            return None
        lo = self._kth((self.n - 1) // 2)
        hi = self._kth(self.n // 2)
        return (lo + hi) / 2

    def _kth(self, k: int) -> int:
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen > k:
                return key << self.shift
        raise IndexError(k)


class AudioMeter:
    """Running totals over the client's audio messages: bytes, seconds, pace, chunks.

    Real-time factor: each chunk is taken to cover [arrival, arrival + its duration],
    so the wall time of a stream is last arrival - first arrival + last chunk's
    duration.  A paced real-time sender then measures 1.0 exactly, even for a few
    chunks, instead of N/(N-1).
    """
    MAX_WINDOWS: ClassVar[int] = 720  # two hours of 10 s windows in the output; counters cover the rest

    def __init__(self, bytes_per_second: Optional[float], window: float = WINDOW_SECONDS):
        self.bps = bytes_per_second
        self.window = window
        self.sizes = _SizeHistogram()
        self.bytes = 0
        self.chunks = 0
        self.first_time: Optional[float] = None
        self.first_frame: Optional[int] = None
        self.last_time: Optional[float] = None
        self.last_frame: Optional[int] = None
        self.last_chunk_bytes = 0
        self.windows: list[AudioWindow] = []
        self.windows_dropped = 0
        self._win_index = 0
        self._win_bytes = 0
        self._win_chunks = 0
        self.full_windows = 0
        self.full_windows_slow = 0  # complete windows below real time
        self.max_full_rtf: Optional[float] = None
        self.min_full_rtf: Optional[float] = None
        self._last_window_closed = False

    def add(self, time: float, audio_bytes: int, frame: Optional[int] = None) -> None:
        if self._last_window_closed:
            raise RuntimeError("AudioMeter.add after summary()")
        if self.first_time is None:
            self.first_time, self.first_frame = time, frame
        self.last_time, self.last_frame = time, frame
        self.bytes += audio_bytes
        self.chunks += 1
        self.last_chunk_bytes = audio_bytes
        self.sizes.add(audio_bytes)
        if self.bps:
            index = int((time - self.first_time) // self.window)
            while index > self._win_index:  # (a negative index, time going back, closes none)
                self._close_window(self.window)
            self._win_bytes += audio_bytes
            self._win_chunks += 1

    @property
    def seconds(self) -> Optional[float]:
        return self.bytes / self.bps if self.bps else None

    def _close_window(self, span: float) -> None:
        audio = self._win_bytes / self.bps
        rtf = audio / span if span > 0 else None
        if span >= self.window and rtf is not None:
            self.full_windows += 1
            self.full_windows_slow += rtf < 1.0
            self.max_full_rtf = rtf if self.max_full_rtf is None else max(self.max_full_rtf, rtf)
            self.min_full_rtf = rtf if self.min_full_rtf is None else min(self.min_full_rtf, rtf)
        if len(self.windows) < self.MAX_WINDOWS:
            self.windows.append(AudioWindow(
                start=round(self._win_index * self.window, 3), seconds=round(span, 3),
                audio_seconds=round(audio, 6), chunks=self._win_chunks,
                realtime_factor=None if rtf is None else round(rtf, 3)))
        else:
            self.windows_dropped += 1
        self._win_index += 1
        self._win_bytes = 0
        self._win_chunks = 0

    def bytes_per_second(self) -> Optional[float]:
        """The audio payload rate over the stream's wall time (first arrival to last arrival
        plus the last chunk's duration when the format gives a byte rate; without one, to
        the last arrival): what the dashboard and the timeline show as the audio rate."""
        if self.first_time is None:
            return None
        wall = self.last_time - self.first_time
        if self.bps:
            wall += self.last_chunk_bytes / self.bps
        return self.bytes / wall if wall > 0 else None

    def realtime_factor(self) -> Optional[float]:
        if not self.bps:
            return None
        rate = self.bytes_per_second()
        return None if rate is None else rate / self.bps

    def summary(self) -> AudioPace:
        """The aggregate; closes the last (partial) window."""
        if self.bps and self.first_time is not None and not self._last_window_closed:
            self._last_window_closed = True
            start = self.first_time + self._win_index * self.window
            span = min(self.window, self.last_time - start + self.last_chunk_bytes / self.bps)
            self._close_window(span)
        rtf = self.realtime_factor()
        rate = self.bytes_per_second()

        def ms(nbytes: Optional[float]) -> Optional[float]:
            return None if nbytes is None or not self.bps else round(nbytes / self.bps * 1000, 3)

        median = self.sizes.median()
        return AudioPace(
            bytes=self.bytes, chunks=self.chunks,
            seconds=None if self.seconds is None else round(self.seconds, 6),
            realtime_factor=None if rtf is None else round(rtf, 3),
            bytes_per_second=None if rate is None else round(rate, 1),
            chunk_ms=None if not self.bps or not self.chunks else SizeStats(
                ms(self.sizes.min), ms(median), ms(self.sizes.max)),  # type: ignore[arg-type]
            chunk_bytes=None if not self.chunks else SizeStats(
                self.sizes.min, median, self.sizes.max),  # type: ignore[arg-type]
            first_frame=self.first_frame, first_time=self.first_time,
            last_frame=self.last_frame, last_time=self.last_time,
            windows=self.windows, windows_dropped=self.windows_dropped,
            full_windows=self.full_windows, full_windows_below_realtime=self.full_windows_slow,
            max_window_rtf=None if self.max_full_rtf is None else round(self.max_full_rtf, 3),
            min_window_rtf=None if self.min_full_rtf is None else round(self.min_full_rtf, 3),
        )


# --- verdicts (used by the finding rules) -----------------------------------------

# "Sustained": a handful of chunks says nothing about pace.  Faster needs at least
# MIN_CHUNKS chunks and MIN_AUDIO_SECONDS of audio; slower needs at least two complete
# 10 s windows, every one of them below 1.0, and the whole stream below SLOW_OVERALL
# (a real-time sender with a slightly slow clock measures 0.98-1.0: not a problem).
MIN_CHUNKS = 10
MIN_AUDIO_SECONDS = 2.0
MIN_SLOW_WINDOWS = 2
SLOW_OVERALL = 0.95


def is_faster_than_realtime(pace: AudioPace) -> bool:
    rtf = pace.realtime_factor
    if rtf is None or pace.chunks < MIN_CHUNKS:
        return False
    if (pace.seconds or 0) < MIN_AUDIO_SECONDS:
        return False
    peak = pace.max_window_rtf
    return rtf > MAX_REALTIME_FACTOR or (peak is not None and peak > MAX_REALTIME_FACTOR)


def is_slower_than_realtime(pace: AudioPace) -> bool:
    rtf = pace.realtime_factor
    full = pace.full_windows
    if rtf is None or full < MIN_SLOW_WINDOWS or pace.chunks < MIN_CHUNKS:
        return False
    return pace.full_windows_below_realtime == full and rtf < SLOW_OVERALL


def chunk_verdict(pace: AudioPace) -> Optional[str]:
    """"small" / "large" when the typical (median) chunk is outside 20-250 ms."""
    chunk = pace.chunk_ms
    if chunk is None or chunk.median is None:
        return None
    if chunk.median < CHUNK_MS_MIN:
        return "small"
    if chunk.median > CHUNK_MS_MAX:
        return "large"
    return None
