"""Deepgram finding rules over finished sessions: ids, severities, evidence."""
import pytest

from analyzer.deepgram.audio import wav_header
from analyzer.deepgram.messages import EMPTY_SHA256
from tests.support.deepgram_session import (TEST_KEY, ScriptedSession, metadata, results,
                                     run_deepgram_rules)
from analyzer.model import Finding

LIVE = {"model": "nova-3", "encoding": "linear16", "sample_rate": "16000"}
NET0001 = ("Deepgram did not receive audio data or a text message within the timeout window. "
           "See https://dpgr.am/net0001")
NET0000 = ("Deepgram did not provide a response message within the timeout window. "
           "See https://dpgr.am/net0000")
WEBM = bytes.fromhex("1a45dfa39f4286810142f7810142f2810442f381084282847765626d")


def findings(b):
    s = b.finish()
    return s, run_deepgram_rules(s)


def ids(found):
    return [(f.id, f.severity) for f in found]


def one(found, fid) -> Finding:
    matching = [f for f in found if f.id == fid]
    assert len(matching) == 1, [f.id for f in found]
    return matching[0]


def test_healthy_stream_has_no_findings():
    b = ScriptedSession(query=LIVE)
    for k in range(1, 31):
        b.client_binary(3200, 0.1 * k)
    b.client_json({"type": "CloseStream"}, 3.1)
    b.server_json(metadata(3.0, "ab" * 32), 3.3)
    b.close("server", 1000, "", 3.31)
    _, found = findings(b)
    assert found == []


# --- close codes ------------------------------------------------------------------

def test_net0001_after_a_client_gap_names_the_last_frame():
    b = ScriptedSession(query=LIVE)
    for k in range(1, 31):
        b.client_binary(3200, 0.104 * k, frame=382 + k)  # last: No. 412 at 12:00:03.120
    b.close("server", 1011, NET0001, 13.125, frame=520)
    b.tcp_end("fin", "server", 13.2)
    s, found = findings(b)
    assert ids(found) == [("deepgram-close", "error")]
    f = found[0]
    assert f.message == (
        "Deepgram closed the stream with 1011 NET-0001 at frame 520 (12:00:13.125): no audio or "
        "text message from the client for 10 s; the client's last frame was No. 412 at "
        "12:00:03.120, 10.0 s before the close. See https://dpgr.am/net0001")
    assert f.frames == [520]
    assert (f.details["code"], f.details["name"], f.details["pattern"]) == (1011, "NET-0001", "client-gap")
    assert (f.details["last_client_frame"], f.details["silence_before_close"]) == (412, 10.005)
    assert f.details["gap_seconds"] == 10.005 and f.details["gap_kind"] == "any"
    assert f.details["steps"][0] == "Ensure audio is sent within 10 seconds of opening the connection."
    assert s.to_json()["deepgram"]["close_explanation"]["pattern"] == "client-gap"


def test_waited_for_server():
    b = ScriptedSession(query=LIVE)
    b.close("server", 1011, NET0001, 10.07)
    b.close("client", 1011, NET0001, 10.08)
    _, found = findings(b)
    assert ids(found) == [("deepgram-close", "error"), ("waited-for-server", "error")]
    w = one(found, "waited-for-server")
    assert w.message == (
        "The client never sent a frame: Deepgram closed the stream with 1011 NET-0001 10.0 s "
        "after the 101 (frame 6); the client was waiting for the server to speak first, but "
        "Deepgram sends nothing until it receives audio: start sending audio as soon as the "
        "connection opens.")
    assert w.frames == [6, 7] and w.details == {"seconds_after_open": 10.02}


def test_keepalive_without_audio():
    b = ScriptedSession(query=LIVE)
    for i in range(3):
        b.client_json({"type": "KeepAlive"}, 1.0 + 3 * i)
    b.close("server", 1011, NET0001, 17.1)
    _, found = findings(b)
    assert ids(found) == [("deepgram-close", "error"), ("keepalive-without-audio", "error")]
    k = one(found, "keepalive-without-audio")
    assert k.frames == [7, 10] and k.details == {"keepalives": 3}
    assert "only KeepAlive (3, first No. 7) and never audio" in k.message


def test_data0000_names_the_sniffed_format():
    b = ScriptedSession(query={"model": "nova-3", "encoding": "opus"})
    b.client_binary(4000, 0.3, head=WEBM)
    b.close("server", 1008, "DATA-0000", 0.8)
    _, found = findings(b)
    assert ids(found) == [("container-with-encoding", "error"), ("deepgram-close", "error")]
    c = one(found, "deepgram-close")
    assert c.message == (
        "Deepgram closed the stream with 1008 DATA-0000 at frame 8 (12:00:00.800): the audio "
        "could not be decoded; the first audio payload (frame 7, 4000 bytes) is WebM/Matroska "
        "but encoding=opus was set; containerised audio must be sent without encoding. See "
        "https://developers.deepgram.com/docs/stt-troubleshooting-websocket-data-and-net-errors")
    assert c.details["pattern"] == "container-with-encoding"


def test_net0000_and_tts_codes():
    b = ScriptedSession(query=LIVE)
    for k in range(1, 4):
        b.client_binary(3200, 0.1 * k)
    b.close("server", 1011, NET0000, 20.0)
    _, found = findings(b)
    c = one(found, "deepgram-close")
    assert c.details["name"] == "NET-0000"
    assert "the client had sent 0.30 s of audio and Deepgram had returned 0 results" in c.message

    b = ScriptedSession(path="/v1/speak", query={"model": "aura-2-thalia-en"})
    b.client_binary(100, 0.1, head=b"\x01\x02")
    b.close("server", 1003, "MESSAGE-0000", 0.2)
    _, found = findings(b)
    c = one(found, "deepgram-close")
    assert c.details["name"] == "MESSAGE-0000" and "the client sent 1 binary frame" in c.message


def test_close_outside_the_catalogue_is_still_reported():
    b = ScriptedSession(query=LIVE)
    b.close("server", 1011, "internal error", 1.0)
    _, found = findings(b)
    assert ids(found) == [("deepgram-close", "warning")]
    assert found[0].details == {"code": 1011, "name": None, "reason": "internal error"}
    assert found[0].message == (
        'Deepgram closed the stream with 1011 "internal error" at frame 7 (12:00:01.000), a '
        "code/reason outside its documented catalogue; if it repeats, give Deepgram support the "
        "request id 0b6a9c33-1111-4222-8333-944455556666.")
    b = ScriptedSession(query=LIVE)
    b.close("server", 1001, "going away", 1.0)
    assert findings(b)[1] == []


# --- client messages ----------------------------------------------------------------

def test_keepalive_binary():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    b.client_binary(20, 4.0, head=b'{"type":"KeepAlive"}')
    b.client_binary(20, 8.0, head=b'{"type":"KeepAlive"}')
    _, found = findings(b)
    k = one(found, "keepalive-binary")
    assert k.severity == "warning" and k.frames == [8, 9] and k.details == {"count": 2}
    assert k.message.startswith("2 KeepAlive messages sent as binary frames (first No. 8 at "
                                "12:00:04.000)")


def test_closestream_in_binary_is_an_error():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    b.client_binary(23, 0.2, head=b'{"type":"CloseStream"}')
    _, found = findings(b)
    j = one(found, "json-in-binary")
    assert (j.severity, j.details) == ("error", {"count": 1, "types": ["CloseStream"]})


def test_text_not_json():
    b = ScriptedSession(query=LIVE)
    b.client_text("KeepAlive", 1.0)
    _, found = findings(b)
    t = one(found, "text-not-json")
    assert t.severity == "warning" and t.frames == [7]
    assert "1 client text message not JSON (first No. 7 at 12:00:01.000: 'KeepAlive')" in t.message


def test_no_closestream_when_the_client_closes():
    b = ScriptedSession(query=LIVE)
    for k in range(1, 11):
        b.client_binary(3200, 0.1 * k)
    b.close("client", 1000, "", 1.2)
    b.close("server", 1000, "", 1.25)
    _, found = findings(b)
    assert ids(found) == [("no-closestream", "warning")]
    assert found[0].frames == [17]
    assert found[0].message.startswith(
        "The client closed the stream (close 1000 at frame 17, 12:00:01.200) without CloseStream")


def test_no_closestream_when_the_connection_drops():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    b.tcp_end("rst", "client", 0.5)
    _, found = findings(b)
    n = one(found, "no-closestream")
    assert n.message.startswith("The connection ended (TCP RST at frame 8, 12:00:00.500)")


def test_no_closestream_softened_by_finalize():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    b.client_json({"type": "Finalize"}, 0.2)
    r = results(0.0, 0.1, "done", True)
    r["from_finalize"] = True
    b.server_json(r, 0.3)
    b.close("client", 1000, "", 0.4)
    _, found = findings(b)
    assert ids(found) == [("no-closestream", "info")]


def test_no_closestream_not_raised_when_server_closed_or_nothing_sent():
    b = ScriptedSession(query=LIVE)
    b.close("client", 1000, "", 0.4)  # connected and left: nothing to lose
    assert findings(b)[1] == []
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    b.close("server", 1011, NET0001, 10.2)
    assert [f.id for f in findings(b)[1]] == ["deepgram-close"]


def test_audio_after_closestream_and_closed_before_metadata():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    b.client_json({"type": "CloseStream"}, 0.2)
    b.client_binary(3200, 0.3)
    b.client_binary(3200, 0.4)
    b.close("client", 1000, "", 0.45)
    _, found = findings(b)
    assert ids(found) == [("audio-after-closestream", "warning"),
                          ("closed-before-metadata", "warning")]
    a = one(found, "audio-after-closestream")
    assert a.frames == [8, 9, 10] and a.details == {"count": 2, "bytes": 6400, "end_frame": 8}
    c = one(found, "closed-before-metadata")
    assert c.details == {"seconds": 0.25, "summary": "Metadata"}


def test_audio_after_empty_binary_frame():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    b.client_binary(0, 0.2)
    b.client_binary(3200, 0.3)
    _, found = findings(b)
    a = one(found, "audio-after-closestream")
    assert "after the empty binary frame (frame 8 at 12:00:00.200), which Deepgram treats as end " \
           "of stream" in a.message


def test_tts_close_without_close_message_is_info():
    b = ScriptedSession(path="/v1/speak", query={"model": "aura-2-thalia-en"})
    b.client_json({"type": "Speak", "text": "hi"}, 0.1)
    b.close("client", 1000, "", 0.5)
    _, found = findings(b)
    assert ids(found) == [("no-closestream", "info")]


# --- what Deepgram received ---------------------------------------------------------

def test_no_audio_received():
    b = ScriptedSession(query=LIVE)
    b.client_json({"type": "CloseStream"}, 0.2)
    b.server_json(metadata(0.0, EMPTY_SHA256, channels=0), 0.3)
    b.close("server", 1000, "", 0.31)
    _, found = findings(b)
    assert ids(found) == [("no-audio-received", "error")]
    assert found[0].frames == [8]
    assert found[0].details == {"sha256": EMPTY_SHA256, "duration": 0.0, "audio_chunks": 0,
                                "audio_bytes": 0}
    assert "the client sent no audio on this connection" in found[0].message


def test_audio_undecodable():
    b = ScriptedSession(query={"model": "nova-3"})
    b.client_binary(3200, 0.1)
    b.client_json({"type": "CloseStream"}, 0.2)
    b.server_json(metadata(0.0, "9f" * 32), 0.3)
    b.close("server", 1000, "", 0.31)
    _, found = findings(b)
    assert ids(found) == [("audio-undecodable", "error"), ("raw-without-encoding", "error")]
    u = one(found, "audio-undecodable")
    assert "the first audio payload (frame 7) is headerless (raw) audio, sent with no encoding " \
           "parameter" in u.message


def test_raw_without_encoding():
    b = ScriptedSession(query={"model": "nova-3"})
    b.client_binary(3200, 0.1, head=b"\x10\x00\x20\x00")
    _, found = findings(b)
    r = one(found, "raw-without-encoding")
    assert r.frames == [7] and r.details["first_bytes"].startswith("1000200000")


def test_wav_with_matching_encoding_is_a_warning():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3244, 0.1, head=wav_header(16000, 1, 2, 0))
    _, found = findings(b)
    assert ids(found) == [("container-with-encoding", "warning")]


def test_container_without_encoding_and_named_containers_are_fine():
    b = ScriptedSession(query={"model": "nova-3"})
    b.client_binary(4000, 0.1, head=WEBM)
    assert findings(b)[1] == []
    b = ScriptedSession(query={"model": "nova-3", "encoding": "flac"})
    b.client_binary(4000, 0.1, head=b"fLaC\x00\x00\x00\x22")
    assert findings(b)[1] == []


# --- pace and chunks ------------------------------------------------------------------

def test_faster_than_realtime():
    b = ScriptedSession(query=LIVE)
    for i in range(300):
        b.client_binary(3200, 0.1 + 0.02 * i)
    _, found = findings(b)
    f = one(found, "faster-than-realtime")
    assert f.severity == "warning"
    assert f.details["realtime_factor"] == 4.934 and f.details["audio_seconds"] == 30.0
    assert f.message.startswith("Audio was sent at 4.93x real time (30.0 s of audio in 6.1 s); "
                                "Deepgram expects at most 1.25x")


def test_slower_than_realtime():
    b = ScriptedSession(query=LIVE)
    for i in range(200):
        b.client_binary(3200, 0.1 + 0.15 * i)
    _, found = findings(b)
    f = one(found, "slower-than-realtime")
    assert f.details["realtime_factor"] == 0.668 and f.details["full_windows"] == 2
    assert "every one of the 2 complete 10 s windows below 1.0 (slowest 0.67x)" in f.message


def test_chunk_size():
    b = ScriptedSession(query=LIVE)
    for i in range(50):
        b.client_binary(320, 0.01 * (i + 1))  # 10 ms chunks
    _, found = findings(b)
    c = one(found, "chunk-size")
    assert c.severity == "info"
    assert c.details == {"chunk_ms": {"min": 10.0, "median": 10.0, "max": 10.0}, "chunks": 50}
    b = ScriptedSession(query=LIVE)
    for i in range(4):
        b.client_binary(32000, 1.0 * (i + 1))  # 1 s chunks
    c = one(findings(b)[1], "chunk-size")
    assert c.severity == "warning" and c.message.startswith("Audio chunks are typically 1000 ms")


# --- handshake and parameters ---------------------------------------------------------

def test_handshake_cause_and_params_do_not_repeat():
    b = ScriptedSession(query={"model": "nova-3", "language": "english", "foo": "1"}, status=400,
                       reason="Bad Request", dg_error="Failed to deserialize query parameters")
    _, found = findings(b)
    assert ids(found) == [("handshake-cause", "error"), ("param-unknown", "info")]
    h = found[0]
    assert h.message == ('Handshake rejected with HTTP 400 Bad Request (dg-error: "Failed to '
                         'deserialize query parameters"): language=english is not a language '
                         "code; use e.g. en or en-US.")
    assert h.frames == [6] and h.details["param"] == "language"


def test_handshake_cause_401_missing_prefix_masks_the_key():
    b = ScriptedSession(status=401, headers=[["Host", "api.deepgram.com"],
                                            ["Authorization", TEST_KEY]])
    _, found = findings(b)
    h = one(found, "handshake-cause")
    assert TEST_KEY not in h.message and "(****cdef) lacks the `Token ` prefix" in h.message


def test_param_invalid_on_an_accepted_handshake_is_softened():
    b = ScriptedSession(query={"model": "nova-3", "punctuate": "True", "encoding": "linear16"})
    _, found = findings(b)
    assert ids(found) == [("param-invalid", "warning"), ("param-invalid", "error")]
    assert [f.details["param"] for f in found] == ["punctuate", "sample_rate"]


def test_non_deepgram_sessions_get_no_deepgram_findings():
    b = ScriptedSession(path="/chat", headers=[["Host", "example.com"]], dg_request_id=None,
                       query={"encoding": "linear16"})
    b.client_binary(20, 0.1, head=b'{"type":"KeepAlive"}')
    b.close("server", 1011, NET0001, 11.0)
    assert findings(b)[1] == []


def test_server_error_and_warning_messages():
    b = ScriptedSession(path="/v1/agent/converse")
    b.server_json({"type": "Error", "description": "Settings missing", "code": "INVALID"}, 0.1)
    b.server_json({"type": "Warning", "description": "slow llm", "code": "W_SLOW"}, 0.2)
    _, found = findings(b)
    # (no Welcome in this synthetic session: no-greeting says so)
    assert ids(found) == [("no-greeting", "info"), ("server-error", "error"),
                          ("server-warning", "warning")]
    found = found[1:]
    # Codes outside the endpoint's documented list are said to be so.
    assert found[0].message == ('Deepgram sent an Error message at frame 7 (12:00:00.100): '
                                '"Settings missing" (code INVALID), a code Deepgram does not '
                                'document for /v1/agent/converse.')
    assert found[0].details["documented"] is False


@pytest.mark.parametrize("kind,code,meaning", [
    ("Error", "SETTINGS_ALREADY_APPLIED", "a second Settings message was sent"),
    ("Error", "CLIENT_MESSAGE_TIMEOUT", "the client sent nothing for too long (the idle limit is "
                                        "unconfirmed)"),
    ("Warning", "FORCE_END_TURN_UNSUPPORTED", "ForceEndTurn works only with a Flux listen provider "
                                              "(dg:/docs/voice-agent-force-end-turn)"),
])
def test_agent_codes_are_explained(kind, code, meaning):
    from analyzer.deepgram.endpoints import agent
    b = ScriptedSession(path="/v1/agent/converse")
    b.server_json({"type": kind, "description": "d", "code": code}, 0.1)
    _, found = findings(b)
    (f,) = [f for f in found if f.id in ("server-error", "server-warning")]
    entry = (agent.ERRORS if kind == "Error" else agent.WARNINGS)[code]
    assert entry.meaning == meaning
    assert f.message.endswith(f'"d" (code {code}): {entry.meaning}; {entry.step}.')
    assert f.details["session_ends"] is (kind == "Error") and f.details["documented"] is True


def test_midstream_capture_does_not_claim_the_client_waited():
    b = ScriptedSession(query=LIVE)
    b.session.midstream = True
    b.close("server", 1011, NET0001, 4.0)
    _, found = findings(b)
    assert ids(found) == [("deepgram-close", "error")]
    assert found[0].details["pattern"] is None
    assert "no client frame was captured before the close (the capture began mid-stream)" in \
        found[0].message


def test_rules_on_a_session_whose_analyzer_saw_no_message():
    from analyzer.deepgram.analyzer import DeepgramAnalyzer
    from analyzer.model import CloseFrame, Handshake, Session
    s = Session(index=0, client="a:1", server="b:2", tcp_stream=0, websocket=True,
                handshake=Handshake(path="/v1/listen", status=101, response_frame=3,
                                    response_time=100.0))
    s.close.server = CloseFrame(1011, "NET-0001", 10, 110.1)
    s.close.initiator = "server"
    # The close is explained once, when the Deepgram layer finishes; rules read that.
    assert run_deepgram_rules(s) == []
    DeepgramAnalyzer(s.handshake).finish(s)
    assert s.deepgram.close_explanation.pattern == "waited-for-server"
    assert ids(run_deepgram_rules(s)) == [("deepgram-close", "error"), ("waited-for-server", "error")]
    assert run_deepgram_rules(Session(index=1, client="a:1", server="b:2", tcp_stream=1)) == []


def test_generic_server_with_deepgram_like_messages_gets_no_deepgram_findings():
    b = ScriptedSession(path="/chat", headers=[["Host", "example.com"]], dg_request_id=None)
    b.server_json({"type": "Error", "description": "room full"}, 0.1)
    b.server_json(metadata(0.0, EMPTY_SHA256), 0.2)
    assert findings(b)[1] == []


def test_data0000_after_json_sent_as_binary():
    b = ScriptedSession(query=LIVE)
    b.client_binary(97, 0.1, head=b'{"transcript_request": true, "note": "this is not audio", "n": 1}')
    b.close("server", 1008, "DATA-0000: The payload cannot be decoded as audio.", 0.2)
    s, found = findings(b)
    assert ids(found) == [("json-in-binary", "warning"), ("deepgram-close", "error")]
    assert s.to_json()["messages"]["client"] == {"JSON (binary)": 1}
    c = one(found, "deepgram-close")
    assert c.details["pattern"] == "json-in-binary"
    assert "the client's binary frames were JSON text, not audio (first No. 7)" in c.message
