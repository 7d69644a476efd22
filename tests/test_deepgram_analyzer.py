"""DeepgramAnalyzer fed realistic message sequences: what finish() writes to extra."""
import json

import pytest

from analyzer.deepgram import DeepgramAnalyzer
from analyzer.deepgram.audio import wav_header
from analyzer.deepgram.latency import LatencySamples, percentile
from analyzer.deepgram.messages import EMPTY_SHA256, control_in_binary
from tests.support.deepgram_session import T0, ScriptedSession, handshake, metadata, results
from analyzer.deepgram.transcript import TranscriptBuilder
from analyzer.model import CLIENT, SERVER, Handshake, Session

LIVE = {"model": "nova-3", "encoding": "linear16", "sample_rate": "16000",
        "interim_results": "true"}
SHA = "5d41402abc4b2a76b9719d911017c592" * 2

# k -> the server message that arrives 50 ms after the k-th 100 ms chunk
PLAN = {
    10: results(0.0, 0.7, "hello", False),            # cursor 1.0 -> 0.3
    14: results(0.0, 0.9, "hello wor", False),        # cursor 1.4 -> 0.5
    15: results(0.0, 1.2, "hello world", True, True),  # final: ignored for latency
    20: results(1.2, 0.6, "how", False),              # cursor 2.0 -> 0.2
    25: results(1.2, 0.9, "how are", False),          # cursor 2.5 -> 0.4
    28: results(1.2, 0.6, "how", False),              # cursor 2.8 -> 1.0
    29: results(1.2, 1.6, "how are you", True, True, confidence=0.9),
}


def live_stream(plan=PLAN, chunks=30, query=LIVE):
    b = ScriptedSession(query=query)
    for k in range(1, chunks + 1):
        b.client_binary(3200, 0.1 * k)
        if k in plan:
            b.server_json(plan[k], 0.1 * k + 0.05)
    b.client_json({"type": "CloseStream"}, 3.1)
    b.server_json(metadata(3.0, SHA), 3.35)
    b.close("server", 1000, "", 3.36)
    b.close("client", 1000, "", 3.37)
    b.tcp_end("fin", "server", 3.4)
    return b


def test_healthy_stream_extra():
    s = live_stream().finish()
    x = s.to_json()
    assert x["endpoint"] == "listen"
    assert x["latency"] == {"p50": 0.4, "p95": 0.9, "max": 1.0, "samples": 5,
                            "closestream_to_metadata": 0.25, "speak_to_first_audio": None}
    assert x["messages"] == {"client": {"audio": 30, "CloseStream": 1},
                             "server": {"Results": 7, "Metadata": 1}}
    assert x["transcript"] == "hello world how are you"
    a = x["audio"]
    assert (a["format"], a["container"], a["encoding"], a["sample_rate"], a["channels"],
            a["sample_width"]) == (None, False, "linear16", 16000, 1, 2)
    assert (a["bytes"], a["chunks"], a["seconds"], a["realtime_factor"]) == (96000, 30, 3.0, 1.0)
    assert a["chunk_ms"] == {"min": 100.0, "median": 100.0, "max": 100.0}
    assert a["windows"] == [{"start": 0.0, "seconds": 3.0, "audio_seconds": 3.0, "chunks": 30,
                             "realtime_factor": 1.0}]
    assert (a["first_frame"], a["first_payload"]["frame"], a["first_payload"]["size"]) == (7, 7, 3200)
    d = x["deepgram"]
    assert d["detected"] is True
    assert d["request_id"] == "0b6a9c33-1111-4222-8333-944455556666"
    assert d["sha256"] == SHA
    assert d["metadata"]["duration"] == 3.0
    assert d["results"]["final"] == 2 and d["results"]["interim"] == 5
    assert d["results"]["speech_final"] == 2
    assert d["results"]["mean_confidence"] == 0.94
    assert d["stream_end"]["type"] == "CloseStream"
    assert d["param_problems"] == [] and d["handshake_cause"] is None
    assert d["credentials"] == {"where": "authorization", "scheme": "Token", "jwt": False,
                                "credential": "Token ****cdef"}
    assert d["close_explanation"]["name"] == "normal"
    json.dumps(s.to_json())  # the whole extra is JSON


def test_latency_ignores_final_results():
    only_finals = {k: results(0.0, 0.1 * k, "x", True) for k in (5, 10)}
    s = live_stream(plan=only_finals).finish()
    assert s.to_json()["latency"]["samples"] == 0
    assert s.to_json()["latency"]["p50"] is None


def test_latency_needs_a_computable_cursor():
    s = live_stream(query={"model": "nova-3", "encoding": "opus", "sample_rate": "48000"}).finish()
    assert s.to_json()["audio"]["seconds"] is None
    assert s.to_json()["latency"]["samples"] == 0


def test_percentile_and_bounded_samples():
    assert percentile([0.2, 0.3, 0.4, 0.5, 1.0], 95) == pytest.approx(0.9)
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    lat = LatencySamples()
    lat.MAX = 100
    for i in range(1000):
        lat.add(float(i))
    summary = lat.summary()
    assert len(lat.values) < 100
    assert (summary.to_json()["samples"], summary.to_json()["max"]) == (1000, 999.0)
    assert summary.to_json()["p50"] == pytest.approx(500, abs=40)


def test_wav_stream_takes_the_format_from_its_header():
    b = ScriptedSession(query={"model": "nova-3"})
    header = wav_header(16000, 1, 2, 0)
    b.client_binary(44 + 3200, 0.1, head=header)
    for k in range(2, 11):
        b.client_binary(3200, 0.1 * k)
    s = b.finish()
    a = s.to_json()["audio"]
    assert (a["format"], a["encoding"], a["encoding_source"], a["sample_rate"]) == (
        "wav", "linear16", "wav-header", 16000)
    assert (a["bytes"], a["seconds"], a["realtime_factor"]) == (32000, 1.0, 1.0)
    assert a["wav"]["data_offset"] == 44


def test_message_counts_and_unknown_types():
    b = ScriptedSession(query=LIVE)
    b.client_json({"type": "KeepAlive"}, 0.1)
    b.client_binary(21, 0.2, head=b'{"type": "KeepAlive"}')
    b.client_text("ping", 0.3)
    b.client_json({"type": "Finalize"}, 0.4)
    b.client_json({"hello": 1}, 0.5)
    b.server_json({"type": "SpeechStarted", "channel": [0, 1], "timestamp": 0.2}, 0.6)
    b.server_json({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 2.395}, 0.7)
    b.server_json({"type": "Mystery", "x": 1}, 0.8)
    b.server_json({"type": "Mystery", "x": 2}, 0.9)
    b.server_json("not json at all", 1.0)
    s = b.finish()
    assert s.to_json()["messages"] == {
        "client": {"KeepAlive": 1, "KeepAlive (binary)": 1, "(not JSON)": 1, "Finalize": 1,
                   "(no type)": 1},
        "server": {"SpeechStarted": 1, "UtteranceEnd": 1, "Mystery": 2, "(not JSON)": 1}}
    unknown = s.to_json()["deepgram"]["unknown_types"]
    assert unknown["Mystery"] == {"count": 2, "first_frame": 14, "sample": '{"type": "Mystery", "x": 1}'}
    assert unknown["(not JSON)"]["count"] == 1
    assert s.to_json()["audio"]["chunks"] == 0  # a binary KeepAlive is not audio


@pytest.mark.parametrize("data,kind", [
    (b'{"type":"KeepAlive"}', "KeepAlive"),
    (b' {"type" : "CloseStream"}', "CloseStream"),
    (b'{"type":"Finalize","channel":0}', "Finalize"),
    (b'{"type":"KeepAlive","pad":"' + b"x" * 60, "KeepAlive"),  # truncated at 64 bytes
    (b"\x00\x01" * 32, None),
    (b'{"no":"type"}', "JSON"),  # JSON, but no control message
    (b'[1, 2, 3]', "JSON"),
    (b"{\x00\x01\x02\x03\xff\xfe", None),  # audio that happens to start with "{"
])
def test_control_in_binary(data, kind):
    assert control_in_binary(data[:64]) == kind


def test_empty_binary_frame_ends_the_stream():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    b.client_binary(0, 0.2)
    b.client_binary(3200, 0.3)
    s = b.finish()
    d = s.to_json()["deepgram"]
    assert d["stream_end"] == {"type": "empty binary frame", "frame": 8, "time": T0 + 0.2}
    assert d["audio_after_end"]["count"] == 1 and d["audio_after_end"]["bytes"] == 3200
    assert s.to_json()["messages"]["client"] == {"audio": 2, "empty": 1}


def test_transcript_bound_and_channels():
    t = TranscriptBuilder(limit=20)
    for word in ("alpha", "beta", "gamma", "delta", "epsilon"):
        t.add(word)
    assert (t.text(), t.truncated) == ("alpha beta gamma", True)
    t = TranscriptBuilder()
    t.add("left", 0)
    t.add("right", 1)
    t.add("  ", 0)
    assert t.text() == "[channel 0] left\n[channel 1] right"


def test_multichannel_results():
    b = ScriptedSession(query={**LIVE, "channels": "2", "multichannel": "true"})
    b.client_binary(6400, 0.1)
    b.server_json(results(0.0, 0.5, "agent says hi", True, channel=0), 0.6)
    b.server_json(results(0.0, 0.5, "caller says hello", True, channel=1), 0.61)
    s = b.finish()
    assert s.transcript == "[channel 0] agent says hi\n[channel 1] caller says hello"
    assert s.to_json()["audio"]["seconds"] == 0.1  # 6400 bytes of 2-channel linear16 at 16 kHz


def test_flux_session():
    b = ScriptedSession(path="/v2/listen", query={"model": "flux-general-en",
                                                 "encoding": "linear16", "sample_rate": "16000"})
    b.server_json({"type": "Connected", "request_id": "flux-req-1", "sequence_id": 0}, 0.06)
    for k in range(1, 11):
        b.client_binary(3200, 0.1 * k)
    b.server_json({"type": "TurnInfo", "event": "Update", "turn_index": 0,
                   "audio_window_start": 0.0, "audio_window_end": 0.76, "transcript": "hi"}, 1.05)
    b.server_json({"type": "TurnInfo", "event": "EndOfTurn", "turn_index": 0,
                   "audio_window_start": 0.0, "audio_window_end": 0.96,
                   "transcript": "hi there", "end_of_turn_confidence": 0.91}, 1.1)
    b.server_json({"type": "Error", "code": "INTERNAL", "description": "model crashed"}, 1.2)
    s = b.finish()
    assert s.endpoint == "listen-v2"
    assert s.transcript == "hi there"
    assert s.to_json()["latency"]["samples"] == 1 and s.to_json()["latency"]["p50"] == 0.24
    d = s.to_json()["deepgram"]
    assert d["request_id"] == "flux-req-1"
    assert d["server_errors"]["items"] == [{"frame": 20, "time": T0 + 1.2, "description":
                                            "model crashed", "code": "INTERNAL"}]


def test_tts_session():
    b = ScriptedSession(path="/v1/speak", query={"model": "aura-2-thalia-en"})
    b.client_json({"type": "Speak", "text": "Hello there."}, 0.1)
    b.client_json({"type": "Speak", "text": "How are you today?"}, 0.11)
    b.client_json({"type": "Flush"}, 0.12)
    b.server_json({"type": "Metadata", "request_id": "tts-1", "model_name": "aura-2-thalia-en",
                   "model_version": "2025-01-01", "model_uuid": "u"}, 0.2)
    for i in range(4):
        b.server_binary(4800, 0.35 + 0.02 * i)
    b.server_json({"type": "Flushed", "sequence_id": 0}, 0.5)
    b.server_json({"type": "Warning", "description": "rate", "code": "W1"}, 0.55)
    b.client_json({"type": "Close"}, 0.6)
    b.close("server", 1000, "", 0.65)
    s = b.finish()
    x = s.to_json()
    assert x["messages"] == {"client": {"Speak": 2, "Flush": 1, "Close": 1},
                             "server": {"Metadata": 1, "audio": 4, "Flushed": 1, "Warning": 1}}
    assert x["latency"]["speak_to_first_audio"] == 0.25
    assert x["audio"]["server"]["bytes"] == 19200 and x["audio"]["chunks"] == 0
    d = x["deepgram"]
    assert d["speak"] == {"messages": 2, "characters": 30, "max_characters": 18,
                          "first_time": T0 + 0.1}
    assert d["stream_end"]["type"] == "Close"
    assert d["request_id"] == "tts-1" and d["metadata"] is None
    assert d["server_warnings"]["count"] == 1


def test_agent_session_uses_settings_audio_format():
    b = ScriptedSession(path="/v1/agent/converse", query={})
    b.server_json({"type": "Welcome", "request_id": "agent-1"}, 0.06)
    b.client_json({"type": "Settings", "audio": {"input": {"encoding": "linear16",
                                                           "sample_rate": 24000}},
                   "agent": {"listen": {"provider": {"type": "deepgram", "model": "nova-3"}}}}, 0.07)
    b.server_json({"type": "SettingsApplied"}, 0.1)
    for k in range(1, 6):
        b.client_binary(4800, 0.1 * k)
    b.server_json({"type": "ConversationText", "role": "user", "content": "Hi"}, 0.6)
    b.server_json({"type": "ConversationText", "role": "assistant", "content": "Hello!"}, 0.7)
    b.server_binary(9600, 0.8)
    s = b.finish()
    x = s.to_json()
    assert x["endpoint"] == "agent"
    assert (x["audio"]["encoding"], x["audio"]["encoding_source"], x["audio"]["sample_rate"]) == (
        "linear16", "settings", 24000)
    assert x["audio"]["seconds"] == 0.5
    assert x["transcript"] == "user: Hi\nassistant: Hello!"
    assert x["deepgram"]["request_id"] == "agent-1"
    assert x["deepgram"]["settings"]["audio_before"] == 0
    assert x["deepgram"]["settings_applied"]["frame"] == 9


def test_midstream_session_infers_the_endpoint():
    dga = DeepgramAnalyzer(Handshake())  # the handshake is not in the capture
    dga.message(SERVER, 1, json.dumps(results(0, 1, "x", True)).encode(), 10, 100, T0)
    s = Session(index=1, client="a:1", server="b:2", tcp_stream=1, midstream=True)
    dga.finish(s)
    assert s.endpoint == "listen"
    assert s.to_json()["deepgram"]["detected"] is True


def test_known_non_deepgram_path_stays_other():
    b = ScriptedSession(path="/socket", headers=[["Host", "example.com"]], dg_request_id=None)
    b.server_json(results(0, 1, "x", True), 0.1)
    s = b.finish()
    assert s.endpoint == "other"
    assert s.to_json()["deepgram"]["detected"] is False


def test_failed_handshake_still_finishes():
    b = ScriptedSession(query={"model": "nova-3", "language": "english"}, status=400,
                       dg_error="Failed to deserialize query parameters")
    s = b.finish()
    cause = s.to_json()["deepgram"]["handshake_cause"]
    assert (cause["status"], cause["param"]) == (400, "language")
    assert s.to_json()["audio"]["bytes"] == 0 and s.transcript == ""
    assert s.to_json()["deepgram"]["close_explanation"] is None


def test_only_the_first_bytes_of_binary_are_needed():
    dga = DeepgramAnalyzer(handshake(query=LIVE))
    dga.message(CLIENT, 2, b"\x00" * 64, 64000, 10, T0 + 1)  # data truncated, size full
    s = Session(index=0, client="a:1", server="b:2", tcp_stream=0, websocket=True)
    dga.finish(s)
    assert (s.to_json()["audio"]["bytes"], s.to_json()["audio"]["seconds"]) == (64000, 2.0)


def test_empty_sha_is_recorded():
    b = ScriptedSession(query=LIVE)
    b.client_json({"type": "CloseStream"}, 0.2)
    b.server_json(metadata(0.0, EMPTY_SHA256, channels=0), 0.3)
    s = b.finish()
    assert s.to_json()["deepgram"]["sha256"] == EMPTY_SHA256


def test_metadata_fields_of_the_wrong_type_are_not_a_request_id_or_digest():
    # A peer's Metadata with a list for request_id and an object for sha256: the compiled build
    # enforces the model's str type (it raised TypeError in finish()), the pure one must agree.
    b = ScriptedSession(query=LIVE)
    b.client_json({"type": "CloseStream"}, 0.2)
    b.server_json(dict(metadata(1.5, SHA), request_id=[], sha256={"a": 1}), 0.3)
    s = b.finish()
    d = s.to_json()["deepgram"]
    # The request id then comes from the handshake's dg-request-id header.
    assert (d["request_id"], d["sha256"]) == (s.handshake.dg_request_id, None)
    assert s.handshake.dg_request_id == "0b6a9c33-1111-4222-8333-944455556666"
    assert (d["metadata"]["request_id"], d["metadata"]["sha256"], d["metadata"]["duration"]) == (None, None, 1.5)


def test_unknown_types_are_bounded():
    b = ScriptedSession(query=LIVE)
    for i in range(60):
        b.server_json({"type": f"T{i}"}, 0.01 * i)
    unknown = b.finish().to_json()["deepgram"]["unknown_types"]
    assert len(unknown) == 51
    assert unknown["(other unknown types)"]["count"] == 10
    assert len(b.session.to_json()["messages"]["server"]) == 51


def test_json_first_bytes_decide_control_in_binary():
    # The audio path asks control_in_binary only about payloads starting with one of
    # JSON_FIRST_BYTES: with any other first byte it must answer None, whatever follows.
    from analyzer.deepgram.messages import JSON_FIRST_BYTES
    for first in range(256):
        data = bytes([first]) + b'{"type":"KeepAlive"}'
        if first not in JSON_FIRST_BYTES:
            assert control_in_binary(data) is None
        elif first not in b"{[":  # leading whitespace
            assert control_in_binary(data) == "KeepAlive"
    assert len(JSON_FIRST_BYTES) == 8
    assert control_in_binary(b'[{"type":"Finalize"}]') == "Finalize"
