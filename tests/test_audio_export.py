"""`dgcap audio`: the exported files against what the recording server saw.

Expected values come from the captures' own facts: the audio seconds the JSON report
states, and the byte count and SHA-256 of the audio the recording server received
(captures/*.expected.json -> scenario.sessions[i]).  The text-to-speech audio is
regenerated with the recording server's own generator from the Speak text in the
capture.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
import tracemalloc
import wave
from pathlib import Path

import pytest

from analyzer.cli import main
from analyzer.deepgram.audio import bytes_per_second, sniff
from analyzer.deepgram.export import AudioWriter, ExportPlan
from analyzer.model import CLIENT, SERVER, AudioSummary, FirstPayload
from analyzer.pipeline import Options, analyze_capture

CAPTURES = Path(__file__).resolve().parent.parent / "captures"


def expectations(capture: str) -> dict:
    name = capture.rsplit(".", 1)[0]
    return json.loads((CAPTURES / f"{name}.expected.json").read_text())


def keylog_for(capture: str):
    exp = expectations(capture)
    return str(CAPTURES / exp["keylog"]) if exp.get("use_keylog") else None


def analysed(capture: str):
    return analyze_capture(str(CAPTURES / capture), Options(keylog=keylog_for(capture)))


def dgcap(args, cwd, monkeypatch, capsys):
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    rc = main(["audio", *[str(a) for a in args]])
    out, err = capsys.readouterr()
    return rc, out, err


def riff_chunks(blob: bytes) -> dict:
    """chunk id -> (offset of its body, declared size), read independently of the code under test."""
    assert blob[:4] == b"RIFF" and blob[8:12] == b"WAVE"
    assert struct.unpack_from("<I", blob, 4)[0] == len(blob) - 8, "RIFF size must match the file"
    out, pos = {}, 12
    while pos + 8 <= len(blob):
        cid, size = blob[pos:pos + 4], struct.unpack_from("<I", blob, pos + 4)[0]
        out[cid] = (pos + 8, size)
        pos += 8 + size + (size & 1)
    assert pos == len(blob), "chunks must tile the file exactly"
    return out


def wav_data(path: Path) -> bytes:
    blob = path.read_bytes()
    start, size = riff_chunks(blob)[b"data"]
    return blob[start:start + size]


def wav_duration(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def no_leftovers(folder: Path) -> list:
    return [p.name for p in folder.iterdir() if p.name.startswith(".dgcap")]


# (capture, session number, scenario session index)
RAW_EXPORTS = [
    ("dg_success.pcap", 1, 0),
    ("dg_ipv6.pcap", 1, 0),
    ("dg_deflate.pcap", 1, 0),  # compressed on the wire: the file holds the inflated audio
    ("dg_empty_binary.pcap", 1, 0),
    ("dg_fast_1_5x.pcap", 1, 0),
    ("dg_silence_7s.pcap", 1, 0),
    ("dg_net0001.pcap", 1, 0),
    ("dg_no_closestream.pcap", 1, 0),
    ("dg_rst.pcap", 1, 0),
    ("dg_multi.pcapng", 1, 0),
    ("dg_multi.pcapng", 3, 2),
    ("tls12_aes256gcm_success.pcap", 1, 0),
    ("tls12_chacha20_success.pcap", 1, 0),
    ("tls13_aes128_success.pcap", 1, 0),
    ("tls13_chacha20_success.pcap", 1, 0),
    ("tls13_net0001.pcap", 1, 0),
    ("tls13_embedded_secrets.pcapng", 1, 0),  # key log inside the pcapng: no --keylog
]


@pytest.mark.parametrize("capture,number,scenario_index", RAW_EXPORTS,
                         ids=[f"{c}-{n}" for c, n, _ in RAW_EXPORTS])
def test_raw_audio_export_matches_the_report_and_the_server(capture, number, scenario_index,
                                                             tmp_path, monkeypatch, capsys):
    session = analysed(capture).sessions[number - 1]
    scenario = expectations(capture)["scenario"]["sessions"][scenario_index]
    audio = session.to_json()["audio"]
    keylog = keylog_for(capture)
    args = [CAPTURES / capture, "--session", number] + (["--keylog", keylog] if keylog else [])
    rc, out, err = dgcap(args, tmp_path, monkeypatch, capsys)
    assert rc == 0, err
    name = f"{capture.rsplit('.', 1)[0]}.session{number}.wav"
    path = tmp_path / name
    data = wav_data(path)
    # What the server received, byte for byte.
    assert len(data) == scenario["audio_bytes_received"]
    assert hashlib.sha256(data).hexdigest() == scenario["audio_sha256"]
    # As long as the report says.
    assert wav_duration(path) == audio["seconds"]
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (
            audio["sample_rate"], audio["channels"], audio["sample_width"])
    size = path.stat().st_size
    assert out == (f"{name}: WAV ({audio['encoding']}, {audio['sample_rate']} Hz, 1 channel), "
                   f"{size} bytes, {audio['seconds']:.3f} s\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_wav_container_is_written_as_sent(tmp_path, monkeypatch, capsys):
    capture = "dg_wav_container.pcap"
    session = analysed(capture).sessions[0]
    scenario = expectations(capture)["scenario"]["sessions"][0]
    audio = session.to_json()["audio"]
    assert audio["format"] == "wav"
    rc, out, err = dgcap([CAPTURES / capture], tmp_path, monkeypatch, capsys)
    assert rc == 0, err
    path = tmp_path / "dg_wav_container.session1.wav"
    blob = path.read_bytes()
    # The whole file is what the client sent (header included), so it hashes like the
    # server's received bytes.
    assert len(blob) == scenario["audio_bytes_received"]
    assert hashlib.sha256(blob).hexdigest() == scenario["audio_sha256"]
    # The request set encoding=linear16, so the report (like Deepgram) counts the
    # 44-byte header as audio; the file's own samples are the rest.
    header = audio["wav"]["data_offset"]
    bps = bytes_per_second(audio["encoding"], audio["sample_rate"], audio["channels"])
    assert wav_duration(path) == pytest.approx(audio["seconds"] - header / bps, abs=1e-9)
    assert out == (f"dg_wav_container.session1.wav: WAV as sent (linear16, 16000 Hz, 1 channel), "
                   f"{len(blob)} bytes, {wav_duration(path):.3f} s\n")


def test_keepalive_sent_as_binary_is_part_of_the_exported_audio(tmp_path, monkeypatch, capsys):
    # Deepgram decodes binary KeepAlive JSON as audio; the export shows exactly that.
    capture = "dg_keepalive_binary.pcap"
    scenario = expectations(capture)["scenario"]["sessions"][0]
    session = analysed(capture).sessions[0]
    rc, out, err = dgcap([CAPTURES / capture], tmp_path, monkeypatch, capsys)
    assert rc == 0, err
    data = wav_data(tmp_path / "dg_keepalive_binary.session1.wav")
    assert len(data) == scenario["audio_bytes_received"]
    assert hashlib.sha256(data).hexdigest() == scenario["audio_sha256"]
    assert data.count(b'"KeepAlive"') == session.to_json()["deepgram"]["keepalive_binary"]["count"]
    assert len(data) & 1 and (tmp_path / "dg_keepalive_binary.session1.wav").stat().st_size == \
        len(data) + 1 + 44  # odd data: one pad byte after it


def test_json_sent_as_binary_is_exported_as_it_was_sent(tmp_path, monkeypatch, capsys):
    capture = "dg_data0000.pcap"
    sent = expectations(capture)["scenario"]["sessions"][0]["client_sent"]
    rc, out, err = dgcap([CAPTURES / capture], tmp_path, monkeypatch, capsys)
    assert rc == 0, err
    data = wav_data(tmp_path / "dg_data0000.session1.wav")
    assert len(data) == sent["payload_bytes"]
    assert json.loads(data)  # the JSON document Deepgram refused to decode


def _tts_generator():
    spec = importlib.util.spec_from_file_location("fake_deepgram", CAPTURES / "fake_deepgram.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.tts_audio


@pytest.mark.parametrize("extra", [[], ["--direction", "server"]], ids=["default", "explicit"])
def test_tts_exports_the_server_audio(extra, tmp_path, monkeypatch, capsys):
    capture = "tts_speak.pcap"
    report = analysed(capture)
    session = report.sessions[0]
    scenario = expectations(capture)["scenario"]["sessions"][0]
    audio = session.to_json()["audio"]
    rc, out, err = dgcap([CAPTURES / capture, *extra], tmp_path, monkeypatch, capsys)
    assert rc == 0, err
    path = tmp_path / "tts_speak.session1.wav"
    data = wav_data(path)
    server = audio["server"]
    bps = bytes_per_second(audio["encoding"], audio["sample_rate"], audio["channels"])
    assert len(data) == server["bytes"] == scenario["audio_bytes_received"]
    assert wav_duration(path) == server["bytes"] / bps
    with wave.open(str(path)) as w:
        assert w.getframerate() == int(session.handshake.query["sample_rate"])
    # The recording server's generator, fed the Speak text found in the capture.
    speak = [json.loads(m.text) for m in session.messages
             if m.direction == CLIENT and json.loads(m.text).get("type") == "Speak"]
    expected = _tts_generator()("".join(s["text"] for s in speak), audio["sample_rate"])
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert out.startswith("tts_speak.session1.wav: WAV (linear16, 24000 Hz, 1 channel), ")


def test_tts_client_direction_has_no_audio(tmp_path, monkeypatch, capsys):
    rc, out, err = dgcap([CAPTURES / "tts_speak.pcap", "--direction", "client"], tmp_path,
                         monkeypatch, capsys)
    assert rc == 2 and out == ""
    assert "session 1: skipped: no client audio" in err
    assert "no session has client audio to write" in err
    assert list(tmp_path.iterdir()) == []


# --- several sessions and output names ------------------------------------------------

def test_all_sessions_by_default_and_failed_handshakes_skipped(tmp_path, monkeypatch, capsys):
    rc, out, err = dgcap([CAPTURES / "dg_multi.pcapng"], tmp_path, monkeypatch, capsys)
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dg_multi.session1.wav",
                                                          "dg_multi.session3.wav"]
    assert [line.split(":")[0] for line in out.splitlines()] == ["dg_multi.session1.wav",
                                                                 "dg_multi.session3.wav"]
    assert err == "dgcap: session 2: skipped: no audio: the handshake failed (HTTP 401)\n"


def test_output_folder(tmp_path, monkeypatch, capsys):
    rc, out, err = dgcap([CAPTURES / "dg_multi.pcapng", "-o", "out/"], tmp_path, monkeypatch, capsys)
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dg_multi.session1.wav",
                                                                    "dg_multi.session3.wav"]
    assert out.splitlines()[0].startswith(os.path.join("out", "dg_multi.session1.wav") + ": ")


def test_output_pattern(tmp_path, monkeypatch, capsys):
    (tmp_path / "a").mkdir()
    rc, out, err = dgcap([CAPTURES / "dg_multi.pcapng", "-o", "a/{stem}-{n}.{ext}"], tmp_path,
                         monkeypatch, capsys)
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["dg_multi-1.wav", "dg_multi-3.wav"]


def test_output_file_with_several_sessions_gets_numbered(tmp_path, monkeypatch, capsys):
    rc, out, err = dgcap([CAPTURES / "dg_multi.pcapng", "-o", "call.wav"], tmp_path, monkeypatch, capsys)
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.session1.wav", "call.session3.wav"]


def test_output_file_for_one_session(tmp_path, monkeypatch, capsys):
    rc, out, err = dgcap([CAPTURES / "dg_multi.pcapng", "--session", "3", "-o", "x"], tmp_path,
                         monkeypatch, capsys)
    assert rc == 0
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]  # extension added
    scenario = expectations("dg_multi.pcapng")["scenario"]["sessions"][2]
    assert hashlib.sha256(wav_data(tmp_path / "x.wav")).hexdigest() == scenario["audio_sha256"]


def test_pattern_needs_n_for_several_sessions(tmp_path, monkeypatch, capsys):
    rc, out, err = dgcap([CAPTURES / "dg_multi.pcapng", "-o", "{stem}.{ext}"], tmp_path,
                         monkeypatch, capsys)
    assert rc == 2 and out == ""
    assert "the pattern needs {n}" in err
    assert list(tmp_path.iterdir()) == []


def test_help_documents_output_names(capsys):
    with pytest.raises(SystemExit) as e:
        main(["audio", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for needle in ("--session", "--direction", "--keylog", "<capture-stem>.session<N>.<ext>",
                   "{n}", "{stem}", "{ext}", "FOLDER/"):
        assert needle in text


# --- errors -------------------------------------------------------------------------

def test_no_such_session(tmp_path, monkeypatch, capsys):
    rc, out, err = dgcap([CAPTURES / "dg_success.pcap", "--session", "2"], tmp_path, monkeypatch, capsys)
    assert rc == 2 and out == ""
    assert err == (f"dgcap: error: {CAPTURES / 'dg_success.pcap'}: no session 2; the capture has "
                   "1 session\n")
    rc, out, err = dgcap([CAPTURES / "dg_multi.pcapng", "--session", "4"], tmp_path, monkeypatch, capsys)
    assert rc == 2 and "no session 4; the capture has 3 sessions (1-3)" in err
    assert list(tmp_path.iterdir()) == []


def test_selected_session_without_audio(tmp_path, monkeypatch, capsys):
    rc, out, err = dgcap([CAPTURES / "dg_multi.pcapng", "--session", "2"], tmp_path, monkeypatch, capsys)
    assert rc == 2 and out == ""
    assert err.endswith("session 2: no audio: the handshake failed (HTTP 401)\n")
    rc, out, err = dgcap([CAPTURES / "dg_wait_for_server.pcap"], tmp_path, monkeypatch, capsys)
    assert rc == 2 and "no client audio" in err
    assert list(tmp_path.iterdir()) == []


def test_tls_without_keys(tmp_path, monkeypatch, capsys):
    # Without keys a 3-second TLS connection to "localhost" is not a session (not a Deepgram
    # host, not shaped like a stream): it is one of the other connections.
    rc, out, err = dgcap([CAPTURES / "tls13_aes128_success.pcap"], tmp_path, monkeypatch, capsys)
    assert rc == 2 and out == ""
    assert err.endswith("no WebSocket sessions in this capture (1 other TCP connection(s): ordinary "
                        "traffic, or TLS that was not decrypted (pass --keylog))\n")


def test_missing_keylog_file(tmp_path, monkeypatch, capsys):
    rc, out, err = dgcap([CAPTURES / "tls13_aes128_success.pcap", "--keylog", tmp_path / "nope.keys"],
                         tmp_path, monkeypatch, capsys)
    assert rc == 2 and "key log file not found" in err


def test_bad_capture_file(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "notes.pcap"
    bad.write_text("this is not a capture\n")
    rc, out, err = dgcap([bad], tmp_path, monkeypatch, capsys)
    assert rc == 2 and out == ""
    assert err.startswith("dgcap: error: ") and "not a pcap or pcapng capture" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    rc, out, err = dgcap([tmp_path / "missing.pcap"], tmp_path, monkeypatch, capsys)
    assert rc == 2 and err == f"dgcap: error: {tmp_path / 'missing.pcap'}: no such file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pcap"]


def _patched(tmp_path, old: bytes, new: bytes) -> Path:
    """dg_success with its request line edited in place (same length: TCP stays intact)."""
    assert len(old) == len(new)
    blob = (CAPTURES / "dg_success.pcap").read_bytes()
    assert blob.count(old) == 1
    path = tmp_path / "edited.pcap"
    path.write_bytes(blob.replace(old, new))
    return path


@pytest.mark.parametrize("old,new,message", [
    (b"encoding=linear16", b"encoding=opus&z=1",
     "encoding=opus is headerless opus data without a container: there is no playable file format"),
    (b"encoding=linear16", b"xncoding=linear16",
     "the audio has no container header and the request sets no encoding, so its format is unknown"),
    (b"sample_rate=16000", b"zample_rate=16000",
     "encoding=linear16 needs a sample_rate and the request sets none"),
], ids=["opus", "no-encoding", "no-sample-rate"])
def test_cannot_wrap(old, new, message, tmp_path, monkeypatch, capsys):
    path = _patched(tmp_path, old, new)
    rc, out, err = dgcap([path], tmp_path, monkeypatch, capsys)
    assert rc == 2 and out == ""
    assert err.startswith(f"dgcap: error: {path}: session 1: cannot write the client audio: {message}")
    assert err.count("\n") == 1 and err.endswith("\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edited.pcap"]


def test_mulaw_is_wrapped_with_its_format_tag(tmp_path, monkeypatch, capsys):
    path = _patched(tmp_path, b"encoding=linear16", b"encoding=mulaw&z=")
    rc, out, err = dgcap([path], tmp_path, monkeypatch, capsys)
    assert rc == 0, err
    blob = (tmp_path / "edited.session1.wav").read_bytes()
    chunks = riff_chunks(blob)
    fmt_at, fmt_len = chunks[b"fmt "]
    tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", blob, fmt_at)
    assert (tag, channels, rate, byte_rate, align, bits) == (7, 1, 16000, 16000, 1, 8)
    data_at, data_len = chunks[b"data"]
    assert struct.unpack_from("<I", blob, chunks[b"fact"][0])[0] == data_len  # samples
    scenario = expectations("dg_success.pcap")["scenario"]["sessions"][0]
    assert hashlib.sha256(blob[data_at:data_at + data_len]).hexdigest() == scenario["audio_sha256"]
    seconds = data_len / 16000
    assert out.endswith(f"WAV (mulaw, 16000 Hz, 1 channel), {len(blob)} bytes, {seconds:.3f} s\n")


def _cut_packet(src: Path, dst: Path, frame_no: int, cut: int) -> None:
    """Copy a little-endian pcap, capturing `cut` bytes less of packet `frame_no` (a snaplen cut)."""
    blob = src.read_bytes()
    assert struct.unpack_from("<I", blob)[0] == 0xA1B2C3D4
    out, pos, n = bytearray(blob[:24]), 24, 0
    while pos < len(blob):
        sec, frac, caplen, orig = struct.unpack_from("<IIII", blob, pos)
        data = blob[pos + 16:pos + 16 + caplen]
        pos += 16 + caplen
        n += 1
        if n == frame_no:
            data = data[:caplen - cut]
        out += struct.pack("<IIII", sec, frac, len(data), orig) + data
    dst.write_bytes(bytes(out))


def test_bytes_missing_from_the_capture_become_silence(tmp_path, monkeypatch, capsys):
    # Find the packet that carries the 10th audio frame (it carries that frame whole).
    audio_frames = []
    analyze_capture(str(CAPTURES / "dg_success.pcap"), Options(
        frame_hook=lambda s, d, f: audio_frames.append(f) if d == CLIENT and f.opcode == 2 else None))
    target = audio_frames[9]
    assert target.first_frame == target.frame
    cut = 1000
    edited = tmp_path / "holed.pcap"
    _cut_packet(CAPTURES / "dg_success.pcap", edited, target.frame, cut)
    rc, out, err = dgcap([edited], tmp_path, monkeypatch, capsys)
    assert rc == 0, err
    assert f"({cut} bytes missing from the capture filled with silence)" in out
    holed = wav_data(tmp_path / "holed.session1.wav")
    rc, out, err = dgcap([CAPTURES / "dg_success.pcap"], tmp_path, monkeypatch, capsys)
    whole = wav_data(tmp_path / "dg_success.session1.wav")
    assert len(holed) == len(whole)
    # The cut took the last `cut` payload bytes of that frame: exactly those are zero.
    end = sum(f.length for f in audio_frames[:10])
    assert holed[end - cut:end] == bytes(cut)
    assert holed[:end - cut] == whole[:end - cut] and holed[end:] == whole[end:]


# --- the writer on its own ------------------------------------------------------------

class _Frame:
    def __init__(self, length, opcode=2, fin=True, rsv=0):
        self.length, self.opcode, self.fin, self.rsv = length, opcode, fin, rsv


def test_writer_memory_does_not_grow_with_the_audio(tmp_path):
    plan = ExportPlan(CLIENT, False, encoding="linear16", sample_rate=16000, channels=1)
    chunk = bytes(range(256)) * 64  # 16 KiB
    frames = 2000  # 2 frames of 16 KiB each: 64 MiB of audio
    with open(tmp_path / "big.wav", "w+b") as f:
        writer = AudioWriter(f, plan)
        tracemalloc.start()
        try:
            for _ in range(frames):
                frame = _Frame(2 * len(chunk))
                writer.payload(frame, chunk)
                writer.payload(frame, memoryview(chunk))
            writer.payload(_Frame(len(chunk) * 4), len(chunk) * 4)  # a hole: silence
            result = writer.close()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 1 << 20
    total = frames * 2 * len(chunk) + 4 * len(chunk)
    assert result.audio_bytes == total and result.missing_bytes == 4 * len(chunk)
    assert (tmp_path / "big.wav").stat().st_size == 44 + total
    assert wav_duration(tmp_path / "big.wav") == total / 2 / 16000


def test_writer_fills_mulaw_holes_with_mulaw_silence(tmp_path):
    plan = ExportPlan(CLIENT, False, encoding="mulaw", sample_rate=8000, channels=1)
    with open(tmp_path / "m.wav", "w+b") as f:
        writer = AudioWriter(f, plan)
        frame = _Frame(10)
        writer.payload(frame, b"\x01\x02")
        writer.payload(frame, 6)
        writer.payload(frame, b"\x03\x04")
        writer.close()
    data = wav_data(tmp_path / "m.wav")
    assert data == b"\x01\x02" + b"\xff" * 6 + b"\x03\x04"  # 0xFF is mu-law's zero


def test_writer_fixes_a_streaming_wav_header(tmp_path):
    # Streaming writers cannot know the size: they put 0xFFFFFFFF in RIFF and data.
    header = (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
                       + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
                       + b"data" + struct.pack("<I", 0xFFFFFFFF))
    samples = bytes(range(200)) * 16
    plan = ExportPlan(CLIENT, True, format="wav")
    with open(tmp_path / "s.wav", "w+b") as f:
        writer = AudioWriter(f, plan)
        writer.payload(_Frame(len(header) + len(samples)), header + samples)
        result = writer.close()
    blob = (tmp_path / "s.wav").read_bytes()
    assert blob[44:] == samples and riff_chunks(blob)[b"data"] == (44, len(samples))
    assert result.seconds == len(samples) / 32000
    assert "header sizes corrected" in result.notes[0]


# --- export plans for the server's audio and other endpoints ---------------------------

def _session(path, query, messages=(), endpoint=None):
    from analyzer.deepgram.endpoints import endpoint_for_path
    from analyzer.model import Handshake, Message, Session
    s = Session(index=1, client="10.0.0.2:5000", server="10.0.0.1:443", tcp_stream=0,
                handshake=Handshake(path=path, query=dict(query), status=101), websocket=True)
    s.messages = [Message(CLIENT, 1, json.dumps(m), 7 + i, 0.0, 10) for i, m in enumerate(messages)]
    s.endpoint = endpoint or endpoint_for_path(path)
    return s


def test_speak_plan_uses_the_query_then_deepgram_defaults():
    from analyzer.deepgram.export import default_direction, plan_export
    s = _session("/v1/speak", {"encoding": "mulaw"})
    assert default_direction(s.endpoint) == SERVER
    plan = plan_export(s, SERVER)
    assert (plan.container, plan.encoding, plan.sample_rate, plan.problem) == (None, "mulaw", 8000, None)
    assert plan.notes == ["the request sets no sample_rate: Deepgram's default 8000 Hz assumed"]
    plan = plan_export(_session("/v1/speak", {}), SERVER)
    assert (plan.encoding, plan.sample_rate, plan.problem) == ("linear16", 24000, None)
    assert len(plan.notes) == 2
    plan = plan_export(_session("/v1/speak", {"encoding": "linear16", "sample_rate": "48000"}), SERVER)
    assert (plan.encoding, plan.sample_rate, plan.notes) == ("linear16", 48000, [])


def test_agent_plans_read_the_settings_message():
    from analyzer.deepgram.export import default_direction, plan_export
    settings = {"type": "Settings", "audio": {"input": {"encoding": "linear16", "sample_rate": 16000},
                                              "output": {"encoding": "alaw", "sample_rate": 8000}}}
    s = _session("/v1/agent/converse", {}, [settings])
    assert default_direction(s.endpoint) == CLIENT
    plan = plan_export(s, SERVER)
    assert (plan.encoding, plan.sample_rate, plan.problem, plan.notes) == ("alaw", 8000, None, [])
    # The client's audio format is what the analysis took from the Settings input.
    s.audio = AudioSummary(container=None, encoding="linear16", sample_rate=16000, channels=1)
    plan = plan_export(s, CLIENT)
    assert (plan.container, plan.encoding, plan.sample_rate, plan.problem) == (False, "linear16", 16000, None)
    # Settings without an output section: Deepgram's defaults.
    plan = plan_export(_session("/v1/agent/converse", {}, [{"type": "Settings", "audio": {}}]), SERVER)
    assert (plan.encoding, plan.sample_rate) == ("linear16", 24000)
    # No Settings captured: the format is unknown unless the audio has a container.
    plan = plan_export(_session("/v1/agent/converse", {}), SERVER)
    assert plan.encoding is None and "the Settings message sets no encoding" in plan.problem


def test_server_audio_with_a_container_is_sniffed(tmp_path):
    from analyzer.deepgram.export import plan_export
    plan = plan_export(_session("/v1/speak", {"encoding": "mp3"}), SERVER)
    assert plan.problem is not None  # mp3 cannot be wrapped...
    frame_data = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(100)
    with open(tmp_path / "a.bin", "w+b") as f:
        writer = AudioWriter(f, plan)
        writer.payload(_Frame(len(frame_data)), frame_data)
        result = writer.close()
    # ...but the data says MP3, which is written as sent.
    assert (result.error, result.extension, result.format) == (None, ".mp3", "MP3 as sent")
    assert (tmp_path / "a.bin").read_bytes() == frame_data


def test_nothing_printed_contains_the_api_key(tmp_path, monkeypatch, capsys):
    key = "dgtest_0123456789abcdef0123456789abcdef"  # captures/README.md: the key of every capture
    outputs = []
    for args in ([CAPTURES / "dg_multi.pcapng"], [CAPTURES / "dg_401.pcap"],
                 [CAPTURES / "tls13_net0001.pcap", "--keylog", CAPTURES / "tls13_net0001.keys"],
                 [_patched(tmp_path, b"encoding=linear16", b"encoding=opus&z=1")]):
        rc, out, err = dgcap(args, tmp_path, monkeypatch, capsys)
        outputs.append(out + err)
    assert all(outputs) and not any(key in o or key[-8:] in o for o in outputs)


def test_declared_raw_server_audio_is_not_mistaken_for_mpeg(tmp_path):
    from analyzer.deepgram.export import plan_export
    plan = plan_export(_session("/v1/speak", {"encoding": "linear16", "sample_rate": "24000"}), SERVER)
    # linear16 samples -1025, 400 are the bytes FF FB 90 01: a valid MPEG-1 layer III header
    pcm = struct.pack("<6h", -1025, 400, 4000, -3, 2, 1) * 20
    assert sniff(pcm[:64]).format == "mp3"
    with open(tmp_path / "t.wav", "w+b") as f:
        writer = AudioWriter(f, plan)
        writer.payload(_Frame(len(pcm)), pcm)
        result = writer.close()
    assert (result.error, result.extension) == (None, ".wav")
    assert wav_data(tmp_path / "t.wav") == pcm


def test_client_frame_sync_lookalike_follows_the_declared_encoding():
    from analyzer.deepgram.export import plan_export
    s = _session("/v1/listen", {"encoding": "linear16", "sample_rate": "16000"})
    audio = AudioSummary(container=True, format="mp3", codec=None, encoding="linear16",
                         sample_rate=16000, channels=1,
                         first_payload=FirstPayload(7, 0.0, 16, "fffb9001" + "00" * 12))
    s.audio = audio
    plan = plan_export(s, CLIENT)
    assert (plan.container, plan.encoding, plan.problem) == (False, "linear16", None)
    assert "frame header" in plan.notes[0]
    audio.first_payload.head = b"ID3\x04".hex() + "00" * 12  # a real MP3 file start
    assert plan_export(s, CLIENT).container is True
    audio.format, audio.first_payload.head = "ogg", b"OggS".hex()
    assert plan_export(s, CLIENT).container is True


def test_unwritable_destination_is_one_line(tmp_path, monkeypatch, capsys):
    import analyzer.commands.audio as command

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked"))

    monkeypatch.setattr(command.tempfile, "mkstemp", refuse)
    rc, out, err = dgcap([CAPTURES / "dg_success.pcap"], tmp_path, monkeypatch, capsys)
    assert rc == 2 and out == ""
    assert err == f"dgcap: error: {tmp_path / 'locked'}: Permission denied\n"
