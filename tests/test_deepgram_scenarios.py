"""Every recorded scenario in captures/ gets the right Deepgram diagnosis.

For each capture (TLS ones decrypted with their key log or embedded secrets) the
Deepgram layer must name the right endpoint, raise exactly the right Deepgram
findings, and state the key numbers.  Expected numbers are never typed in: they come
from the capture's own facts --

* captures/*.expected.json: the tshark oracle (frame numbers, gaps, close frames)
  and `scenario` (what the recording server did: request id, audio bytes and
  SHA-256 it received, what the client sent);
* an independent look at the same capture through the pipeline's frame_hook and
  message_hook (raw WebSocket frames and messages, parsed here, not by the Deepgram
  layer), and tshark itself when it is installed;
* what the scenario is documented to do (captures/README.md, fake_deepgram.py).
"""
from __future__ import annotations

import functools
import json
import math
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from analyzer.deepgram.audio import bytes_per_second
from analyzer.timefmt import clock
from analyzer.findings.registry import RULES, RuleContext
from analyzer.model import CLIENT, SERVER
from analyzer.pipeline import Options, analyze_capture

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
CAPTURE_FILES = sorted(p.name for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
FLUX_STEP = 0.24  # fake_deepgram.py: a Flux TurnInfo per 0.24 s of audio
TTS_CHUNK_SECONDS = 0.1  # fake_deepgram.py: speak audio in 100 ms binary messages


# --- independent observations -------------------------------------------------------

@dataclass
class Observed:
    """What the raw WebSocket layer shows for one session (tcp_stream)."""
    frames: list = field(default_factory=list)  # (direction, opcode, length, frame, time)
    messages: list = field(default_factory=list)  # (direction, opcode, data, size, frame, time)
    payloads: dict = field(default_factory=dict)  # client binary frame number -> whole payload

    def texts(self, direction):
        out = []
        for d, op, data, size, frame, time in self.messages:
            if d == direction and op == 1:
                try:
                    obj = json.loads(data.decode("utf-8"))
                except ValueError:
                    obj = None
                out.append((obj if isinstance(obj, dict) else None, frame, time))
        return out

    def types(self, direction) -> Counter:
        return Counter(obj.get("type") if obj else "(not JSON)" for obj, _, _ in self.texts(direction))

    def binary(self, direction):
        return [(data, size, frame, time) for d, op, data, size, frame, time in self.messages
                if d == direction and op == 2]

    def json_binary(self):
        """The client's binary messages that are JSON documents, not audio: (obj, size, frame, time)."""
        out = []
        for _, size, frame, time in self.binary(CLIENT):
            try:
                obj = json.loads(self.payloads[frame])
            except (KeyError, ValueError):
                continue
            if isinstance(obj, dict):
                out.append((obj, size, frame, time))
        return out


@dataclass
class Run:
    report: object
    observed: dict  # tcp_stream -> Observed
    expected: dict  # the expected.json


def _expectations(capture: str) -> dict:
    return json.loads((CAPTURES / f"{capture.split('.')[0]}.expected.json").read_text())


@functools.lru_cache(maxsize=None)
def run(capture: str) -> Run:
    exp = _expectations(capture)
    keylog = str(CAPTURES / exp["keylog"]) if exp.get("use_keylog") else None
    observed: dict[int, Observed] = {}

    def frame_hook(session, direction, f):
        observed.setdefault(session.tcp_stream, Observed()).frames.append(
            (direction, f.opcode, f.length, f.frame, f.time))

    def message_hook(session, direction, m):
        observed.setdefault(session.tcp_stream, Observed()).messages.append(
            (direction, m.opcode, bytes(m.data), m.size, m.frame, m.time))

    payloads: dict = {}  # Frame -> (tcp_stream, bytearray)

    def binary_hook(session, frame, chunk):
        entry = payloads.setdefault(frame, (session.tcp_stream, bytearray()))
        entry[1].extend(bytes(chunk) if not isinstance(chunk, int) else bytes(chunk))

    report = analyze_capture(str(CAPTURES / capture),
                             Options(keylog=keylog, frame_hook=frame_hook, message_hook=message_hook,
                                     binary_hook=binary_hook))
    for frame, (stream, data) in payloads.items():
        observed.setdefault(stream, Observed()).payloads[frame.frame] = bytes(data)
    return Run(report, observed, exp)


def _dg_rules():
    from analyzer.findings import deepgram_endpoint_rules, deepgram_rules  # registers the rules
    modules = {deepgram_rules.__name__, deepgram_endpoint_rules.__name__}
    rules = [fn for _, fn in RULES if fn.__module__ in modules]
    assert rules
    return rules


def deepgram_ids(session) -> set:
    """Ids of the findings the Deepgram rules raise for this session."""
    ctx = RuleContext()
    return {f.id for fn in _dg_rules() for f in (fn(session, ctx) or ())}


@dataclass
class Ctx:
    capture: str
    session: object  # analyzer.model.Session
    exp: dict  # this session's expected.json entry (tshark oracle)
    scenario: dict  # this session's scenario entry (what the server did)
    obs: Observed
    expected_file: dict

    @property
    def bps(self) -> float:
        q = self.session.handshake.query
        return bytes_per_second(q.get("encoding"), int(q.get("sample_rate")), int(q.get("channels", 1)))

    def finding(self, fid):
        found = [f for f in self.session.findings if f.id == fid]
        assert len(found) == 1, f"{fid}: {[f.id for f in self.session.findings]}"
        return found[0]

    def gap(self, kind):
        found = [g for g in self.exp["gaps"] if g["kind"] == kind]
        assert len(found) == 1
        return found[0]


def contexts(capture: str) -> list[Ctx]:
    r = run(capture)
    by_stream = {s.tcp_stream: s for s in r.report.sessions}
    assert sorted(by_stream) == [e["tcp_stream"] for e in r.expected["sessions"]]
    scen = {s["request_id"]: s for s in r.expected["scenario"]["sessions"]}
    out = []
    for e in r.expected["sessions"]:
        s = by_stream[e["tcp_stream"]]
        out.append(Ctx(capture, s, e, scen[e["handshake"]["dg_request_id"]],
                       r.observed.get(e["tcp_stream"], Observed()), r.expected))
    return out


# --- per-scenario expectations ------------------------------------------------------
#
# Each entry: endpoint, the exact set of Deepgram finding ids, and a check of the key
# numbers and the one-line diagnosis.

def _success(c: Ctx):
    dg = c.session.to_json()["deepgram"]
    # KeepAlive, audio, Finalize, audio, CloseStream (captures/README.md)
    assert dg["keepalive"]["count"] == 1 and dg["finalize"]["count"] == 1
    assert dg["results"]["from_finalize"] == 1
    assert dg["stream_end"]["type"] == "CloseStream"
    assert c.session.diagnosis == "Stream completed normally: CloseStream, Metadata, close 1000."


def _net0001(c: Ctx):
    f = c.finding("deepgram-close")
    gap = c.gap("any")
    close = c.exp["close"]["server"]
    d = f.details
    assert (d["code"], d["name"], d["pattern"]) == (1011, "NET-0001", "client-gap")
    assert f.frames == [close["frame"]]
    # The evidence: the client's last frame and its silence before the close.
    assert d["last_client_frame"] == gap["after_frame"]
    assert d["silence_before_close"] == round(gap["seconds"], 3)
    assert d["gap_seconds"] == round(gap["seconds"], 3) and d["gap_kind"] == "any"
    last_audio = max(frame for data, size, frame, time in c.obs.binary(CLIENT))
    assert d["last_client_frame"] == last_audio  # the last thing the client sent was audio
    assert gap["before_frame"] == close["frame"]
    diag = c.session.diagnosis
    for fact in ("1011 NET-0001", f"No. {gap['after_frame']}", f"{gap['seconds']:.1f} s before the close"):
        assert fact in diag, (fact, diag)


def _wait_for_server(c: Ctx):
    gap = c.gap("any")
    hs = c.exp["handshake"]
    assert gap["after_frame"] == hs["response_frame"]  # silence measured from the 101
    f = c.finding("waited-for-server")
    assert f.details["seconds_after_open"] == round(gap["seconds"], 3)
    assert f.frames == [hs["response_frame"], c.exp["close"]["server"]["frame"]]
    close = c.finding("deepgram-close").details
    assert (close["code"], close["name"], close["pattern"]) == (1011, "NET-0001", "waited-for-server")
    assert close["seconds_after_open"] == round(gap["seconds"], 3)
    assert c.obs.texts(CLIENT) == [] and c.obs.binary(CLIENT) == []
    diag = c.session.diagnosis
    for fact in ("1011 NET-0001", f"{gap['seconds']:.1f} s after the 101", "never sent a frame"):
        assert fact in diag, (fact, diag)


def _keepalive_only(c: Ctx):
    keepalives = [obj for obj, _, _ in c.obs.texts(CLIENT) if obj and obj.get("type") == "KeepAlive"]
    assert len(keepalives) == c.scenario["client_sent"]["text"]
    f = c.finding("keepalive-without-audio")
    assert f.details == {"keepalives": len(keepalives)}
    assert f.frames == [c.exp["frames"]["client"]["first_frame"], c.exp["close"]["server"]["frame"]]
    close = c.finding("deepgram-close").details
    assert close["pattern"] == "keepalive-without-audio"
    assert close["first_keepalive_frame"] == c.exp["frames"]["client"]["first_frame"]
    diag = c.session.diagnosis
    assert "1011 NET-0001" in diag and "only KeepAlive and never audio" in diag


def _data0000(c: Ctx):
    first = c.exp["frames"]["client"]["first_frame"]
    sent = c.obs.json_binary()
    assert [frame for _, _, frame, _ in sent] == [first]
    assert len(sent) == c.scenario["client_sent"]["binary"]
    close = c.finding("deepgram-close")
    assert close.details["code"] == 1008 and close.details["name"] == "DATA-0000"
    assert close.details["pattern"] == "json-in-binary"
    assert close.details["json_in_binary"] == len(sent)
    assert close.frames == [c.exp["close"]["server"]["frame"]]
    jb = c.finding("json-in-binary")
    assert jb.frames == [first] and jb.details["count"] == len(sent)
    # The document's own type names it, even though only its first 64 bytes are kept.
    kinds = sorted({obj["type"] for obj, _, _, _ in sent})
    assert jb.details["types"] == kinds
    assert f"({', '.join(kinds)}) sent as binary frames" in jb.message
    # What the sniffer made of it: no container, and no audio payload at all.
    audio = c.session.to_json()["audio"]
    assert audio["format"] is None and audio["container"] is None and audio["first_payload"] is None
    diag = c.session.diagnosis
    for fact in ("1008 DATA-0000", f"first No. {first}", "JSON"):
        assert fact in diag, (fact, diag)


def _wav_container(c: Ctx):
    first = c.exp["frames"]["client"]["first_frame"]
    data, size, frame, _ = c.obs.binary(CLIENT)[0]
    assert frame == first and data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    f = c.finding("container-with-encoding")
    assert f.severity == "warning"  # WAV linear16 with encoding=linear16: decodes anyway
    assert f.frames == [first]
    assert f.details["format"] == "wav" and f.details["encoding"] == c.session.handshake.query["encoding"]
    assert f.details["first_bytes"] == data[:16].hex()
    audio = c.session.to_json()["audio"]
    assert audio["wav"]["sample_rate"] == int(c.session.handshake.query["sample_rate"])
    assert audio["first_payload"]["size"] == size
    diag = c.session.diagnosis
    for fact in ("WAV", f"encoding={c.session.handshake.query['encoding']}", f"frame {first}"):
        assert fact in diag, (fact, diag)


def _no_closestream(c: Ctx):
    close = c.exp["close"]["client"]
    assert c.exp["close"]["initiator"] == "client"
    f = c.finding("no-closestream")
    assert f.severity == "warning" and f.frames == [close["frame"]]
    assert c.session.to_json()["deepgram"]["stream_end"] is None
    assert c.session.to_json()["deepgram"]["metadata"] is None
    diag = c.session.diagnosis
    for fact in (f"close {close['code']} at frame {close['frame']}", "without CloseStream"):
        assert fact in diag, (fact, diag)


def _rst(c: Ctx):
    close = c.exp["close"]
    assert (close["tcp_end"], close["tcp_end_by"]) == ("rst", "client")
    f = c.finding("no-closestream")
    assert f.frames == [close["tcp_end_frame"]]
    assert "TCP RST" in f.message
    diag = c.session.diagnosis
    for fact in ("TCP RST from the client", f"frame {close['tcp_end_frame']}", "no CloseStream"):
        assert fact in diag, (fact, diag)


def _empty_binary(c: Ctx):
    empty = [(frame, time) for d, op, length, frame, time in c.obs.frames
             if d == CLIENT and op == 2 and length == 0]
    assert len(empty) == c.scenario["client_sent"]["empty_binary"] == 1
    frame, time = empty[0]
    end = c.session.to_json()["deepgram"]["stream_end"]
    assert end == {"type": "empty binary frame", "frame": frame, "time": time}
    f = c.finding("empty-binary-frame")
    server_close = c.session.close.server
    assert server_close.frame == c.exp["close"]["server"]["frame"]
    assert f.details == {"frame": frame, "server_close_after": round(server_close.time - time, 6),
                         "server_close_code": c.scenario["server_close"][0]}
    assert f.frames == [frame, server_close.frame]
    assert f"empty binary frame (frame {frame} " in c.session.diagnosis


def _fast(c: Ctx):
    f = c.finding("faster-than-realtime")
    audio = c.session.to_json()["audio"]
    rtf, wall = _expected_rtf(c)
    assert audio["realtime_factor"] == pytest.approx(round(rtf, 3), abs=1e-6)
    assert f.details["realtime_factor"] == pytest.approx(round(rtf, 3), abs=1e-6)
    assert f.details["wall_seconds"] == pytest.approx(round(wall, 3), abs=1e-6)
    assert f.details["audio_seconds"] == c.scenario["audio_bytes_received"] / c.bps
    assert f"at {round(rtf, 3):.2f}x real time" in c.session.diagnosis


def _keepalive_binary(c: Ctx):
    sent = c.obs.json_binary()
    assert sent and all(obj["type"] == "KeepAlive" for obj, _, _, _ in sent)
    f = c.finding("keepalive-binary")
    assert f.details == {"count": len(sent)}
    assert f.frames == [frame for _, _, frame, _ in sent]
    # 1 s audio, 3 binary KeepAlives, 1 s audio (README): they are what the audio counts miss.
    audio_messages = len(c.obs.binary(CLIENT)) - len(sent)
    assert audio_messages == c.session.to_json()["audio"]["chunks"]
    assert len(sent) + audio_messages == c.scenario["client_sent"]["binary"]
    assert f"{len(sent)} KeepAlive messages sent as binary frames (first No. {sent[0][2]}" in \
        c.session.diagnosis


def _handshake_401_no_prefix(c: Ctx):
    f = c.finding("handshake-cause")
    assert f.details["status"] == 401 == c.scenario["status"]
    assert f.frames == [c.exp["handshake"]["response_frame"]]
    diag = c.session.diagnosis
    assert diag.startswith("Handshake rejected with HTTP 401 Unauthorized")
    assert "lacks the `Token ` prefix" in diag
    assert "dgtest_0123456789abcdef0123456789abcdef" not in diag + f.message


def _handshake_401_wrong_key(c: Ctx):
    f = c.finding("handshake-cause")
    assert f.details["status"] == 401 == c.scenario["status"]
    diag = c.session.diagnosis
    assert diag.startswith("Handshake rejected with HTTP 401 Unauthorized")
    assert "the API key" in diag and "was rejected" in diag


def _handshake_400(c: Ctx):
    f = c.finding("handshake-cause")
    assert (f.details["status"], f.details["param"]) == (400, "language") and c.scenario["status"] == 400
    diag = c.session.diagnosis
    assert diag.startswith("Handshake rejected with HTTP 400 Bad Request")
    assert f"language={c.session.handshake.query['language']}" in diag


def _silence_7s(c: Ctx):
    # 7 s without any client frame (README): under the 10 s threshold, so no gap and
    # no NET-0001; the stream ends normally.
    times = [c.session.handshake.response_time] + sorted(
        t for d, op, length, frame, t in c.obs.frames if d == CLIENT)
    longest = max(b - a for a, b in zip(times, times[1:]))
    assert 7.0 <= longest < 10.0
    assert c.session.gaps == [] and c.exp["gaps"] == []
    assert c.session.diagnosis == "Stream completed normally: CloseStream, Metadata, close 1000."


def _deflate(c: Ctx):
    # Every data frame compressed both ways: the audio counted is the inflated audio.
    assert c.session.handshake.deflate is not None
    assert c.session.frames[CLIENT].payload_bytes == c.exp["frames"]["client"]["payload_bytes"]
    assert c.session.frames[CLIENT].payload_bytes < c.session.to_json()["audio"]["bytes"]
    _success(c)


def _normal_close_only(c: Ctx):
    assert c.session.diagnosis == "Stream completed normally: close 1000."


def _flux_turns(c: Ctx) -> list:
    return [obj for obj, _, _ in c.obs.texts(SERVER) if obj.get("type") == "TurnInfo"]


def _flux(c: Ctx):
    seconds = c.scenario["audio_bytes_received"] / c.bps
    turns = _flux_turns(c)
    # fake_deepgram.py: StartOfTurn then Update per 0.24 s of audio; on CloseStream a last
    # Update (no EndOfTurn: dg:/docs/flux/close-stream), then a close without status.
    steps = math.floor(seconds / FLUX_STEP + 1e-9)
    assert [t["event"] for t in turns] == ["StartOfTurn"] + ["Update"] * steps
    assert [t["sequence_id"] for t in turns] == list(range(1, steps + 2))  # Connected is 0
    messages = c.session.to_json()["messages"]["server"]
    assert messages == {"Connected": 1, "TurnInfo": steps + 1}
    assert sum(messages.values()) == c.exp["frames"]["server"]["text"]
    assert c.session.to_json()["latency"]["samples"] == steps  # one per Update
    # The last Update is the turn's final text; Flux sends no Metadata.
    assert c.session.transcript == turns[-1]["transcript"].strip()
    assert c.session.deepgram.protocol.open_turn_transcript == turns[-1]["transcript"]
    assert c.session.deepgram.metadata is None
    assert c.session.close.server.code is None and c.exp["close"]["server"]["code"] is None
    greeting = c.session.deepgram.protocol.first_server_text
    assert (greeting.type, greeting.frame) == ("Connected", c.exp["frames"]["server"]["first_frame"])
    assert c.session.diagnosis == ("Stream completed normally: CloseStream, last Update as the "
                                   "final transcript, close without a code.")


def _flux_keepalive(c: Ctx):
    keepalives = [(obj, frame) for obj, frame, _ in c.obs.texts(CLIENT) if obj["type"] == "KeepAlive"]
    assert len(keepalives) == c.scenario["client_sent"]["text"] == 1
    f = c.finding("keepalive-on-flux")
    close = c.exp["close"]["server"]
    assert close["code"] is None and c.scenario["server_close"] == [None, ""]
    assert f.frames == [keepalives[0][1], close["frame"]]
    assert f.details == {"count": 1, "closed_without_status": True}
    assert "py#649" in f.message and "WebSocket pings" in f.message
    assert c.session.diagnosis == f.message
    # no CloseStream, no EndOfTurn: the open turn is not claimed as a final transcript
    assert c.session.transcript == ""
    assert c.session.deepgram.protocol.open_turn_transcript == _flux_turns(c)[-1]["transcript"]


def _tts_mp3(c: Ctx):
    f = c.finding("handshake-cause")
    assert (f.details["status"], f.details["param"]) == (400, "encoding") == (c.scenario["status"], "encoding")
    # the {category, message, details, request_id} body shape
    assert (f.details["error_code"], f.details["body_shape"]) == ("INVALID_QUERY_PARAMETER", "category")
    assert f.details["request_id"] == c.scenario["request_id"]
    assert c.session.diagnosis.startswith("Handshake rejected with HTTP 400 Bad Request")
    assert c.session.diagnosis.endswith("encoding=mp3 is REST-only: the text-to-speech WebSocket "
                                        "takes linear16, mulaw or alaw.")


def _tts_flush(c: Ctx):
    flushes = [(obj, frame, time) for obj, frame, time in c.obs.texts(CLIENT) if obj["type"] == "Flush"]
    warnings = [(obj, frame) for obj, frame, _ in c.obs.texts(SERVER) if obj["type"] == "Warning"]
    assert len(flushes) == 22 and flushes[-1][2] - flushes[0][2] < 60
    assert [w["warn_code"] for w, _ in warnings] == ["EXCESSIVE_FLUSH"] * 2  # as on the wire
    f = c.finding("flush-limit")
    assert f.frames == [flushes[20][1], warnings[0][1]]
    assert f.details == {"peak_per_minute": 22, "limit": 20, "warnings": 2, "flushes": 22}
    sw = [x for x in c.session.findings if x.id == "server-warning"]
    assert [x.frames for x in sw] == [[frame] for _, frame in warnings]
    assert all(x.details["code"] == "EXCESSIVE_FLUSH" and x.details["documented"] for x in sw)
    assert c.session.diagnosis == f.message


def _speak_v2(c: Ctx):
    server = c.session.to_json()["messages"]["server"]
    types = c.obs.types(SERVER)
    assert types == {"Connected": 1, "SpeechStarted": 2, "SpeechMetadata": 2, "Flushed": 2,
                     "SessionMetadata": 1}
    assert server["audio"] == c.exp["frames"]["server"]["binary"] > 0
    p = c.session.deepgram.protocol
    assert p.first_server_text.type == "Connected"
    last_text = max(frame for _, frame, _ in c.obs.texts(SERVER))
    assert (p.end_summary.type, p.end_summary.frame) == ("SessionMetadata", last_text)
    assert c.session.deepgram.stream_end.type == "Close"
    assert c.session.diagnosis == "Stream completed normally: Close, SessionMetadata, close 1000."


def _agent_normal(c: Ctx):
    p = c.session.deepgram.protocol
    texts = c.obs.texts(SERVER)
    welcome = texts[0]
    assert welcome[0]["type"] == "Welcome"
    assert (p.first_server_text.type, p.first_server_text.frame) == ("Welcome", welcome[1])
    settings = [(obj, frame) for obj, frame, _ in c.obs.texts(CLIENT) if obj["type"] == "Settings"]
    assert len(settings) == 1 and settings[0][1] > welcome[1]
    assert (p.first_client_message.type, p.first_client_message.frame) == ("Settings", settings[0][1])
    assert p.settings.count == 1 and p.audio_before_settings_applied.count == 0
    applied = [frame for obj, frame, _ in texts if obj["type"] == "SettingsApplied"]
    assert c.session.deepgram.settings_applied.frame == applied[0]
    assert c.obs.types(SERVER)["LatencyReport"] == 1
    conversation = [f"{o['role']}: {o['content']}" for o, _, _ in texts if o["type"] == "ConversationText"]
    assert c.session.transcript == "\n".join(conversation)
    assert c.session.diagnosis == "Session completed normally: Settings applied, close 1000."


def _agent_early_audio(c: Ctx):
    audio = c.obs.binary(CLIENT)
    errors = [(obj, frame, time) for obj, frame, time in c.obs.texts(SERVER) if obj["type"] == "Error"]
    assert len(audio) == 1 and len(errors) == 1
    f = c.finding("audio-before-settings")
    assert f.severity == "error"
    assert f.frames == [audio[0][2], errors[0][1]]
    assert f.details == {"count": 1, "bytes": audio[0][1], "before": "Settings"}
    e = c.finding("server-error")
    assert e.details["code"] == "NON_SETTINGS_MESSAGE_BEFORE_SETTINGS" and e.details["session_ends"]
    assert c.session.deepgram.protocol.first_client_message.type == "audio"
    assert c.session.diagnosis == (
        f"Deepgram reported an error at frame {errors[0][1]} ({clock(errors[0][2])}): \"The first "
        "message must be a Settings message.\" (NON_SETTINGS_MESSAGE_BEFORE_SETTINGS): the first "
        "client message was not Settings; send Settings first, right after Welcome, and nothing "
        "else before SettingsApplied.")


def _configure(c: Ctx):
    configure = [(obj, frame) for obj, frame, _ in c.obs.texts(CLIENT) if obj["type"] == "Configure"]
    replies = [(obj, frame) for obj, frame, _ in c.obs.texts(SERVER) if obj["type"] == "ConfigureSuccess"]
    assert len(configure) == len(replies) == 1 and replies[0][0]["keyterms"] == configure[0][0]["keyterms"]
    p = c.session.deepgram.protocol
    assert (p.configure.count, p.configure.first_frame) == (1, configure[0][1])
    assert p.configure_replies.items[0]["frame"] == replies[0][1]
    assert p.configure_replies.items[0]["type"] == "ConfigureSuccess"
    assert c.session.deepgram.stream_end.type == "CloseStream"
    assert c.session.diagnosis == "Stream completed normally: CloseStream, Metadata, close 1000."


def _tts(c: Ctx):
    rate = int(c.session.handshake.query["sample_rate"])
    chunk = rate * 2 * TTS_CHUNK_SECONDS
    audio_messages = math.ceil(c.scenario["audio_bytes_received"] / chunk)
    server = c.session.to_json()["messages"]["server"]
    assert server == {"Metadata": 1, "audio": audio_messages, "Flushed": 1}
    assert audio_messages == c.exp["frames"]["server"]["binary"]
    assert server["Metadata"] + server["Flushed"] == c.exp["frames"]["server"]["text"]
    client = c.session.to_json()["messages"]["client"]
    assert client == {"Speak": 1, "Flush": 1, "Close": 1}
    assert sum(client.values()) == c.scenario["client_sent"]["text"]
    audio = c.session.to_json()["audio"]["server"]
    assert (audio["frames"], audio["bytes"]) == (audio_messages, c.scenario["audio_bytes_received"])
    speak = [(obj, time) for obj, _, time in c.obs.texts(CLIENT) if obj["type"] == "Speak"]
    dg = c.session.to_json()["deepgram"]
    assert dg["speak"]["characters"] == sum(len(o["text"]) for o, _ in speak)
    assert dg["tts_metadata"]["request_id"] == c.scenario["request_id"]
    first_audio = c.obs.binary(SERVER)[0][3]
    assert c.session.to_json()["latency"]["speak_to_first_audio"] == round(first_audio - speak[0][1], 3)
    assert dg["stream_end"]["type"] == "Close"
    assert c.session.diagnosis == "Stream completed normally: Close, close 1000."


S = dict  # readability
SUCCESS = S(endpoint="listen", ids=set(), check=_success, metadata=True, latency=True, transcript=True)
SCENARIOS = {
    "dg_success.pcap": [SUCCESS],
    "dg_ipv6.pcap": [SUCCESS],
    "tls12_aes256gcm_success.pcap": [SUCCESS],
    "tls12_chacha20_success.pcap": [SUCCESS],
    "tls13_aes128_success.pcap": [SUCCESS],
    "tls13_chacha20_success.pcap": [SUCCESS],
    "tls13_embedded_secrets.pcapng": [SUCCESS],
    "dg_multi.pcapng": [
        SUCCESS,
        S(endpoint="listen", ids={"handshake-cause"}, check=_handshake_401_wrong_key),
        S(endpoint="listen", ids=set(), check=_empty_binary, metadata=True, latency=True, transcript=True),
    ],
    "tls13_multi.pcap": [
        SUCCESS,
        S(endpoint="listen", ids=set(), check=_empty_binary, metadata=True, latency=True, transcript=True),
        S(endpoint="listen", ids={"deepgram-close", "json-in-binary"}, check=_data0000),
    ],
    "dg_401.pcap": [S(endpoint="listen", ids={"handshake-cause"}, check=_handshake_401_no_prefix)],
    "dg_400.pcap": [S(endpoint="listen", ids={"handshake-cause"}, check=_handshake_400)],
    "dg_net0001.pcap": [S(endpoint="listen", ids={"deepgram-close"}, check=_net0001, latency=True)],
    "tls13_net0001.pcap": [S(endpoint="listen", ids={"deepgram-close"}, check=_net0001, latency=True)],
    "dg_silence_7s.pcap": [S(endpoint="listen", ids=set(), check=_silence_7s, metadata=True,
                             latency=True, transcript=True)],
    "dg_empty_binary.pcap": [S(endpoint="listen", ids=set(), check=_empty_binary, metadata=True,
                               latency=True, transcript=True)],
    "dg_data0000.pcap": [S(endpoint="listen", ids={"deepgram-close", "json-in-binary"}, check=_data0000)],
    "dg_rst.pcap": [S(endpoint="listen", ids={"no-closestream"}, check=_rst, latency=True, transcript=True)],
    "dg_deflate.pcap": [S(endpoint="listen", ids=set(), check=_deflate, metadata=True, latency=True,
                          transcript=True)],
    "ws_fragmented_ping.pcap": [S(endpoint="other", ids=set(), check=_normal_close_only)],
    "dg_keepalive_only.pcap": [S(endpoint="listen", ids={"deepgram-close", "keepalive-without-audio"},
                                 check=_keepalive_only)],
    "dg_wait_for_server.pcap": [S(endpoint="listen", ids={"deepgram-close", "waited-for-server"},
                                  check=_wait_for_server)],
    "dg_wav_container.pcap": [S(endpoint="listen", ids={"container-with-encoding"}, check=_wav_container,
                                metadata=True, latency=True, transcript=True)],
    "dg_fast_1_5x.pcap": [S(endpoint="listen", ids={"faster-than-realtime"}, check=_fast, metadata=True,
                            latency=True, transcript=True)],
    "dg_no_closestream.pcap": [S(endpoint="listen", ids={"no-closestream"}, check=_no_closestream,
                                 latency=True, transcript=True)],
    "dg_keepalive_binary.pcap": [S(endpoint="listen", ids={"keepalive-binary"}, check=_keepalive_binary,
                                   metadata=True, latency=True, transcript=True,
                                   server_counts_binary_json=True)],
    "tts_speak.pcap": [S(endpoint="speak", ids=set(), check=_tts)],
    "flux_listen.pcap": [S(endpoint="listen-v2", ids=set(), check=_flux, latency=True, transcript=True)],
    "flux_keepalive_json.pcap": [S(endpoint="listen-v2", ids={"keepalive-on-flux"}, check=_flux_keepalive,
                                   latency=True)],
    "tts_mp3_400.pcap": [S(endpoint="speak", ids={"handshake-cause"}, check=_tts_mp3)],
    "tts_flush_limit.pcap": [S(endpoint="speak", ids={"flush-limit", "server-warning"}, check=_tts_flush)],
    "speak_v2.pcap": [S(endpoint="speak-v2", ids=set(), check=_speak_v2)],
    "agent_normal.pcap": [S(endpoint="agent", ids=set(), check=_agent_normal, transcript=True)],
    "agent_audio_before_settings.pcap": [S(endpoint="agent", ids={"audio-before-settings", "server-error"},
                                           check=_agent_early_audio)],
    "dg_configure.pcap": [S(endpoint="listen", ids=set(), check=_configure, metadata=True, latency=True,
                            transcript=True)],
    "dg_callback_credentials.pcap": [S(endpoint="listen", ids=set(), check=_success, metadata=True,
                                       latency=True, transcript=True)],
}

# Findings that belong to another endpoint's rules.
_AGENT_IDS = {"audio-before-settings", "first-message-not-settings", "second-settings", "settings-invalid",
              "agent-audio-format",
              "no-settings-applied", "sent-before-welcome"}
OTHER_ENDPOINTS = {
    "listen": _AGENT_IDS | {"keepalive-on-flux", "flush-limit", "statusless-close", "no-greeting",
               "sequence-gap"},
    "listen-v2": _AGENT_IDS | {"flush-limit", "closed-before-metadata", "keepalive-without-audio",
                               "waited-for-server"},
    "speak": _AGENT_IDS | {"keepalive-on-flux", "waited-for-server", "closed-before-metadata"},
    "speak-v2": _AGENT_IDS | {"keepalive-on-flux", "flush-limit", "waited-for-server"},
    "agent": {"keepalive-on-flux", "flush-limit", "waited-for-server", "closed-before-metadata",
              "no-closestream"},
    "other": _AGENT_IDS | {"keepalive-on-flux", "flush-limit", "sequence-gap"},
}

# Findings that would be a wrong diagnosis for these scenarios (beyond the exact sets).
KEY_ABSENT = {"no-audio-received", "audio-undecodable", "raw-without-encoding", "slower-than-realtime",
              "chunk-size", "server-error", "server-warning", "closed-before-metadata",
              "audio-after-closestream", "param-invalid", "param-unknown", "text-not-json"}


def test_every_capture_has_a_scenario():
    assert CAPTURE_FILES and sorted(SCENARIOS) == CAPTURE_FILES


def _expected_rtf(c: Ctx) -> tuple[float, float]:
    """Real-time factor from the raw frames: audio seconds / (last - first arrival + last chunk)."""
    audio = [(length, time) for d, op, length, frame, time in c.obs.frames
             if d == CLIENT and op == 2 and length > 0]
    total = sum(length for length, _ in audio)
    assert total == c.scenario["audio_bytes_received"]
    wall = audio[-1][1] - audio[0][1] + audio[-1][0] / c.bps
    return (total / c.bps) / wall, wall


@pytest.mark.parametrize("capture", CAPTURE_FILES)
def test_scenario_diagnosis(capture):
    specs = SCENARIOS[capture]
    ctxs = contexts(capture)
    assert len(ctxs) == len(specs)
    for c, spec in zip(ctxs, specs):
        s = c.session
        where = f"{capture} session {s.index}"
        assert s.endpoint == spec["endpoint"], where
        if c.expected_file.get("use_keylog") or capture.startswith("tls"):
            assert s.transport == "tls-decrypted", where
        ids = {f.id for f in s.findings}
        dg_ids = deepgram_ids(s)
        assert dg_ids <= ids, where
        assert dg_ids == spec["ids"], where
        assert not ((ids - spec["ids"]) & KEY_ABSENT), (where, ids & KEY_ABSENT)
        # No endpoint's session may get a finding of another endpoint's rules.
        assert not (ids & OTHER_ENDPOINTS[spec["endpoint"]]), (where, ids)
        # The generic layer's verdicts the oracle requires / forbids.
        assert set(c.exp["findings"]) <= ids, where
        assert not (set(c.exp.get("absent_findings", ())) & ids), where
        # Who this was: the request id the server gave.
        dg = s.to_json()["deepgram"]
        assert dg["request_id"] == c.scenario["request_id"], where
        _check_audio_seconds(c, spec)
        _check_messages(c)
        if spec.get("metadata"):
            meta = dg["metadata"]
            assert meta["request_id"] == c.scenario["request_id"], where
            assert meta["sha256"] == dg["sha256"] == c.scenario["audio_sha256"] != EMPTY_SHA256, where
            assert meta["duration"] == pytest.approx(c.scenario["audio_bytes_received"] / c.bps, abs=1e-6)
        else:
            assert dg["metadata"] is None, where
        if spec.get("latency"):
            lat = s.to_json()["latency"]
            interim = _interim_results(c)
            assert lat["samples"] == interim > 0, where
            assert lat["p50"] <= lat["p95"] <= lat["max"], where
        if spec.get("transcript"):
            assert s.transcript, where
            if spec["endpoint"] == "listen":
                assert s.transcript == _final_transcript(c), where
        spec["check"](c)


def _check_audio_seconds(c: Ctx, spec: dict) -> None:
    s = c.session
    if s.handshake.status != 101 or spec["endpoint"] not in ("listen", "listen-v2"):
        return
    received = c.scenario["audio_bytes_received"]
    if spec.get("server_counts_binary_json"):
        # The recording server counted binary JSON as audio; Deepgram's layer does not.
        received -= sum(size for _, size, _, _ in c.obs.json_binary())
    assert s.to_json()["audio"]["seconds"] == received / c.bps, c.capture
    assert s.to_json()["audio"]["bytes"] == received


def _check_messages(c: Ctx) -> None:
    """The report's per-type counts equal the JSON types seen on the raw messages."""
    counts = c.session.to_json()["messages"]
    for direction, name in ((CLIENT, "client"), (SERVER, "server")):
        text = c.obs.types(direction)
        reported = {k: v for k, v in counts[name].items()
                    if k not in ("audio", "empty") and not k.endswith("(binary)")}
        assert reported == dict(text), (c.capture, name)
    binary = c.obs.binary(CLIENT)
    json_bin = c.obs.json_binary()
    assert counts["client"].get("audio", 0) == len([b for b in binary if b[1]]) - len(json_bin)
    assert counts["client"].get("empty", 0) == len([b for b in binary if not b[1]])
    assert counts["server"].get("audio", 0) == len(c.obs.binary(SERVER))


def _interim_results(c: Ctx) -> int:
    n = 0
    for obj, _, _ in c.obs.texts(SERVER):
        if obj.get("type") == "Results" and obj.get("is_final") is False:
            n += 1
        elif obj.get("type") == "TurnInfo" and obj.get("event") == "Update":
            n += 1
    return n


def _final_transcript(c: Ctx) -> str:
    pieces = []
    for obj, _, _ in c.obs.texts(SERVER):
        if obj.get("type") == "Results" and obj.get("is_final"):
            text = obj["channel"]["alternatives"][0]["transcript"].strip()
            if text:
                pieces.append(text)
    return " ".join(pieces)


# --- numbers read with tshark --------------------------------------------------------

def _tshark_json(capture: str, port: int, keylog=None) -> list[dict]:
    cmd = [TSHARK, "-r", str(CAPTURES / capture), "-d", f"tcp.port=={port},http", "-Y", "websocket",
           "-T", "json", "-e", "frame.time_epoch", "-e", "tcp.srcport", "-e", "websocket.opcode",
           "-e", "websocket.payload_length", "-e", "websocket.payload_length_ext_16",
           "-e", "websocket.payload_length_ext_64", "-e", "websocket.payload.text"]
    out = subprocess.run(cmd, capture_output=True, check=True, timeout=120).stdout
    return [p["_source"]["layers"] for p in json.loads(out)]


@needs_tshark
def test_realtime_factor_from_tshark_timestamps():
    capture = "dg_fast_1_5x.pcap"
    c = contexts(capture)[0]
    port = c.expected_file["scenario"]["port"]
    audio = []
    for layers in _tshark_json(capture, port):
        if int(layers["tcp.srcport"][0]) == port or "2" not in layers["websocket.opcode"]:
            continue
        assert layers["websocket.opcode"] == ["2"], "one client frame per packet expected"
        short = int(layers["websocket.payload_length"][0])
        length = (int(layers["websocket.payload_length_ext_16"][0]) if short == 126 else
                  int(layers["websocket.payload_length_ext_64"][0]) if short == 127 else short)
        if length:
            audio.append((float(layers["frame.time_epoch"][0]), length))
    total = sum(n for _, n in audio)
    assert total == c.scenario["audio_bytes_received"]
    wall = audio[-1][0] - audio[0][0] + audio[-1][1] / c.bps
    rtf = total / c.bps / wall
    assert c.session.to_json()["audio"]["realtime_factor"] == pytest.approx(round(rtf, 3), abs=1e-6)
    assert c.finding("faster-than-realtime").details["wall_seconds"] == pytest.approx(round(wall, 3), abs=1e-6)
    # And the frame_hook view agrees with tshark to the microsecond.
    assert _expected_rtf(c)[0] == pytest.approx(rtf, abs=1e-6)


@needs_tshark
@pytest.mark.parametrize("capture", ["flux_listen.pcap", "tts_speak.pcap"])
def test_server_message_types_match_tshark(capture):
    c = contexts(capture)[0]
    port = c.expected_file["scenario"]["port"]
    types, binary = Counter(), 0
    for layers in _tshark_json(capture, port):
        if int(layers["tcp.srcport"][0]) != port:
            continue
        binary += layers["websocket.opcode"].count("2")
        for text in layers.get("websocket.payload.text", []):
            types[json.loads(text)["type"]] += 1
    expected = dict(types)
    if binary:
        expected["audio"] = binary
    assert c.session.to_json()["messages"]["server"] == expected


NORMAL_SESSIONS = {"dg_success.pcap": "listen", "dg_configure.pcap": "listen",
                   "flux_listen.pcap": "listen-v2", "tts_speak.pcap": "speak",
                   "speak_v2.pcap": "speak-v2", "agent_normal.pcap": "agent"}


@pytest.mark.parametrize("capture", sorted(NORMAL_SESSIONS))
def test_each_endpoints_normal_session_has_no_finding_at_all(capture):
    (c,) = contexts(capture)
    assert c.session.endpoint == NORMAL_SESSIONS[capture]
    assert [(f.severity, f.id) for f in c.session.findings] == []
    assert "completed normally" in c.session.diagnosis


def test_every_endpoint_has_a_normal_session():
    assert set(NORMAL_SESSIONS.values()) == {"listen", "listen-v2", "speak", "speak-v2", "agent"}
