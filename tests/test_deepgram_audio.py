"""Audio sniffing, seconds and pace, chunk statistics, WAV export helpers."""
import io
import struct
import wave

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.deepgram import audio as au
from analyzer.deepgram.audio import (AudioMeter, bytes_per_second, extension_for, sniff,
                                     wav_header, wav_params_for)

WAV_16K = wav_header(16000, 1, 2, 32000)  # 44 bytes, as an SDK would send it first
OGG_OPUS = (b"OggS\x00\x02" + b"\x00" * 8 + b"\x01\x00\x00\x00" + b"\x00" * 8 + b"\x01\x13"
            + b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00")
WEBM = bytes.fromhex("1a45dfa39f4286810142f7810142f2810442f381084282847765626d")


@pytest.mark.parametrize("data,fmt,codec", [
    (WAV_16K, "wav", None),
    (OGG_OPUS, "ogg", "opus"),
    (b"OggS\x00\x02" + b"\x00" * 22 + b"\x01vorbis", "ogg", "vorbis"),
    (b"fLaC\x00\x00\x00\x22", "flac", None),
    (WEBM, "webm", None),
    (b"ID3\x04\x00\x00\x00\x00\x00\x23", "mp3", None),
    (bytes.fromhex("fffb9064") + b"\x00" * 8, "mp3", None),  # MPEG-1 layer III frame
    (bytes.fromhex("fff15080") + b"\x00" * 8, "aac", None),  # ADTS
    (b"#!AMR\n\x3c", "amr", None),
    (b"#!AMR-WB\n\x04", "amr-wb", None),
])
def test_sniff_containers(data, fmt, codec):
    s = sniff(data)
    assert (s.format, s.codec, s.container) == (fmt, codec, True)


@pytest.mark.parametrize("data", [
    b"\xff" * 64,  # mu-law silence starts with a frame-sync-looking 0xFF 0xFF
    b"\x7f" * 64,
    b"\x00" * 64,  # linear16 silence
    bytes.fromhex("ffef0100") * 4,  # linear16 samples that start FF Ex
    b"",
])
def test_sniff_headerless(data):
    s = sniff(data)
    assert (s.format, s.container, s.name) == (None, False, "headerless (raw) audio")


def test_sniff_wav_fields():
    s = sniff(WAV_16K + b"\x00" * 20)
    assert s.wav.to_json() == {"format_tag": 1, "channels": 1, "sample_rate": 16000,
                               "bits_per_sample": 16, "data_offset": 44}
    assert s.wav.encoding == "linear16"
    assert s.name == "WAV"
    mulaw = sniff(wav_header(8000, 1, 1, 800, fmt=7))
    assert (mulaw.wav.format_tag, mulaw.wav.encoding, mulaw.wav.data_offset) == (7, "mulaw", 58)


def test_bytes_per_second():
    assert bytes_per_second("linear16", 16000, 1) == 32000.0
    assert bytes_per_second("linear16", 48000, 2) == 192000.0
    assert bytes_per_second("linear32", 16000, 1) == 64000.0
    assert bytes_per_second("mulaw", 8000, 1) == 8000.0
    assert bytes_per_second("alaw", 8000, 2) == 16000.0
    assert bytes_per_second("opus", 48000, 1) is None
    assert bytes_per_second("linear16", None, 1) is None
    assert bytes_per_second(None, 16000, 1) is None


def test_wav_header_pcm_reads_back():
    data = b"\x01\x00" * 800
    blob = wav_header(16000, 1, 2, len(data)) + data
    assert len(blob) == 44 + 1600
    with wave.open(io.BytesIO(blob)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (
            1, 2, 16000, 800)


def test_wav_header_linear32_is_integer_pcm():
    fmt, width = wav_params_for("linear32")
    h = wav_header(16000, 2, width, 6400, fmt)
    assert struct.unpack_from("<HHIIHH", h, 20) == (1, 2, 16000, 128000, 8, 32)


def test_wav_header_mulaw_alaw_layout():
    assert wav_params_for("mulaw") == (7, 1)
    assert wav_params_for("alaw") == (6, 1)
    assert wav_params_for("opus") is None
    h = wav_header(8000, 1, 1, 801, fmt=7)
    assert len(h) == 58
    assert h[:4] == b"RIFF" and h[8:16] == b"WAVEfmt "
    assert struct.unpack_from("<I", h, 4)[0] == 58 - 8 + 801 + 1  # odd data is padded
    assert struct.unpack_from("<I", h, 16)[0] == 18
    assert struct.unpack_from("<HHIIHHH", h, 20) == (7, 1, 8000, 8000, 1, 8, 0)
    assert h[38:42] == b"fact" and struct.unpack_from("<II", h, 42) == (4, 801)
    assert h[50:54] == b"data" and struct.unpack_from("<I", h, 54)[0] == 801


@pytest.mark.parametrize("fmt,ext", [("wav", ".wav"), ("ogg", ".ogg"), ("webm", ".webm"),
                                     ("flac", ".flac"), ("mp3", ".mp3"), ("linear16", ".wav"),
                                     ("mulaw", ".wav"), ("opus", ".raw"), (None, ".raw"),
                                     ("amr-wb", ".awb"), ("WAV", ".wav")])
def test_extension_for(fmt, ext):
    assert extension_for(fmt) == ext


# --- pace -----------------------------------------------------------------------

def paced(meter, chunks, size, interval, start=100.0):
    for i in range(chunks):
        meter.add(start + i * interval, size, i + 1)
    return meter.summary()


def test_real_time_sender_measures_exactly_one():
    s = paced(AudioMeter(32000.0), 20, 3200, 0.1)  # 100 ms chunks every 100 ms
    assert (s.to_json()["bytes"], s.to_json()["chunks"], s.to_json()["seconds"], s.to_json()["realtime_factor"]) == (64000, 20, 2.0, 1.0)
    assert s.to_json()["chunk_ms"] == {"min": 100.0, "median": 100.0, "max": 100.0}
    assert s.to_json()["windows"] == [{"start": 0.0, "seconds": 2.0, "audio_seconds": 2.0, "chunks": 20,
                             "realtime_factor": 1.0}]
    assert not au.is_faster_than_realtime(s) and not au.is_slower_than_realtime(s)


@settings(max_examples=60, deadline=None)
@given(chunks=st.integers(1, 400), ms=st.sampled_from([20, 40, 50, 100, 160, 250]))
def test_paced_sender_is_never_flagged(chunks, ms):
    size = 32 * ms  # linear16 16 kHz mono: 32 bytes per ms
    s = paced(AudioMeter(32000.0), chunks, size, ms / 1000)
    assert s.to_json()["realtime_factor"] == 1.0
    assert s.to_json()["seconds"] == pytest.approx(chunks * ms / 1000)
    assert not au.is_faster_than_realtime(s)
    assert not au.is_slower_than_realtime(s)
    assert au.chunk_verdict(s) is None


def test_burst_is_faster_than_realtime():
    s = paced(AudioMeter(32000.0), 300, 3200, 0.02)  # 30 s of audio in ~6 s
    assert s.to_json()["seconds"] == 30.0
    assert s.to_json()["realtime_factor"] == 4.934  # 30 / (299 * 0.02 + 0.1)
    assert au.is_faster_than_realtime(s)


def test_a_short_burst_is_not_flagged():
    s = paced(AudioMeter(32000.0), 5, 32000, 0.001)  # five 1 s chunks at once
    assert s.to_json()["realtime_factor"] > 4
    assert not au.is_faster_than_realtime(s)


def test_one_fast_window_is_flagged_even_when_overall_is_fine():
    m = AudioMeter(32000.0)
    # windows are 10 s from the first audio frame (0.05)
    for i in range(100):  # 10 s of audio in real time
        m.add(0.05 + i * 0.1, 3200)
    for j in range(200):  # 20 s of audio in the next 10 s: 2x
        m.add(10.075 + j * 0.05, 3200)
    for k in range(100):  # 10 s of audio in 20 s: 0.5x
        m.add(20.1 + k * 0.2, 3200)
    s = m.summary()
    assert s.to_json()["realtime_factor"] == 1.001  # 40 s / (39.9 - 0.05 + 0.1)
    assert [w["realtime_factor"] for w in s.to_json()["windows"][:3]] == [1.0, 2.0, 0.5]
    assert s.to_json()["max_window_rtf"] == 2.0
    assert au.is_faster_than_realtime(s)
    assert not au.is_slower_than_realtime(s)


def test_slow_sender_windows_and_verdict():
    s = paced(AudioMeter(32000.0), 200, 3200, 0.15, start=0.0)  # 100 ms every 150 ms
    assert s.to_json()["seconds"] == 20.0
    assert s.to_json()["realtime_factor"] == 0.668  # 20 / (199 * 0.15 + 0.1)
    assert [(w["chunks"], w["seconds"], w["realtime_factor"]) for w in s.to_json()["windows"]] == [
        (67, 10.0, 0.67), (67, 10.0, 0.67), (66, 9.95, 0.663)]
    assert (s.to_json()["full_windows"], s.to_json()["full_windows_below_realtime"]) == (2, 2)
    assert s.to_json()["min_window_rtf"] == 0.67
    assert au.is_slower_than_realtime(s)


def test_slow_needs_two_complete_windows():
    s = paced(AudioMeter(32000.0), 60, 3200, 0.15, start=0.0)  # 9 s: one partial window
    assert s.to_json()["realtime_factor"] < 0.7
    assert not au.is_slower_than_realtime(s)


def test_a_pause_is_not_slowness():
    m = AudioMeter(32000.0)
    for i in range(100):
        m.add(i * 0.1, 3200)
    for i in range(100):  # 20 s pause, then real time again
        m.add(30.0 + i * 0.1, 3200)
    s = m.summary()
    assert [w["realtime_factor"] for w in s.to_json()["windows"]] == [1.0, 0.0, 0.0, 1.0]
    assert s.to_json()["full_windows_below_realtime"] == 2
    assert not au.is_slower_than_realtime(s)


def test_chunk_statistics_and_verdicts():
    m = AudioMeter(32000.0)
    for i, size in enumerate([320, 320, 640, 960]):  # 10, 10, 20, 30 ms
        m.add(i * 0.01, size)
    s = m.summary()
    assert s.to_json()["chunk_ms"] == {"min": 10.0, "median": 15.0, "max": 30.0}
    assert s.to_json()["chunk_bytes"] == {"min": 320, "median": 480.0, "max": 960}
    assert au.chunk_verdict(s) == "small"
    big = paced(AudioMeter(32000.0), 4, 16000, 0.5)
    assert big.to_json()["chunk_ms"]["median"] == 500.0
    assert au.chunk_verdict(big) == "large"


def test_unknown_rate_gives_no_seconds():
    s = paced(AudioMeter(None), 10, 960, 0.02)
    assert (s.to_json()["bytes"], s.to_json()["seconds"], s.to_json()["realtime_factor"], s.to_json()["chunk_ms"]) == (9600, None, None, None)
    assert s.to_json()["chunk_bytes"] == {"min": 960, "median": 960.0, "max": 960}
    assert s.to_json()["windows"] == []


def test_memory_stays_bounded():
    m = AudioMeter(32000.0)
    for i in range(9000):
        m.add(i * 1.0, 1000 + i)  # 9000 distinct sizes, 900 windows
    s = m.summary()
    assert len(m.sizes.counts) <= au._SizeHistogram.MAX_KEYS
    assert (s.to_json()["chunk_bytes"]["min"], s.to_json()["chunk_bytes"]["max"]) == (1000, 9999)
    assert s.to_json()["chunk_bytes"]["median"] == pytest.approx(5499.5, rel=0.01)
    assert len(s.to_json()["windows"]) == AudioMeter.MAX_WINDOWS
    assert s.to_json()["windows_dropped"] == 900 - AudioMeter.MAX_WINDOWS


def test_size_histogram_counts_repeats_and_tracks_min_max_in_any_order():
    h = au._SizeHistogram()
    for size in (500, 300, 300, 900, 300, 0):
        h.add(size)
    assert (h.n, h.min, h.max, h.counts, h.median()) == (6, 0, 900, {500: 1, 300: 3, 900: 1, 0: 1}, 300.0)
