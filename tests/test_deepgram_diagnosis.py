"""diagnose(): one sentence per session, chosen by priority."""
import pytest

from analyzer.deepgram import diagnose
from analyzer.deepgram.messages import EMPTY_SHA256
from analyzer.findings.registry import RuleContext, run_rules
from tests.support.deepgram_session import ScriptedSession, metadata
from analyzer.model import Finding

LIVE = {"model": "nova-3", "encoding": "linear16", "sample_rate": "16000"}
NET0001 = ("Deepgram did not receive audio data or a text message within the timeout window. "
           "See https://dpgr.am/net0001")
NET0000 = ("Deepgram did not provide a response message within the timeout window. "
           "See https://dpgr.am/net0000")
WEBM = bytes.fromhex("1a45dfa39f4286810142f7810142f2810442f381084282847765626d")


def diagnosed(b):
    """The diagnosis chooses among the findings, so every rule (generic and Deepgram) runs."""
    s = b.finish()
    s.findings = run_rules(s, RuleContext())
    return diagnose(s)


def test_ok_stream():
    b = ScriptedSession(query=LIVE)
    for k in range(1, 11):
        b.client_binary(3200, 0.1 * k)
    b.client_json({"type": "CloseStream"}, 1.1)
    b.server_json(metadata(1.0, "ab" * 32), 1.3)
    b.close("server", 1000, "", 1.31)
    b.close("client", 1000, "", 1.32)
    assert diagnosed(b) == "Stream completed normally: CloseStream, Metadata, close 1000."


def test_handshake_failure_beats_everything():
    b = ScriptedSession(query={"model": "nova-3", "language": "english"}, status=400,
                       reason="Bad Request", dg_error="Failed to deserialize query parameters")
    assert diagnosed(b) == ('Handshake rejected with HTTP 400 Bad Request (dg-error: "Failed to '
                            'deserialize query parameters"): language=english is not a language '
                            "code; use e.g. en or en-US.")


def test_handshake_401_missing_token_prefix():
    b = ScriptedSession(status=401, headers=[["Authorization", "dgtest_0123456789abcdef0123456789abcdef"]],
                       dg_error="Invalid credentials.")
    sentence = diagnosed(b)
    assert sentence.startswith('Handshake rejected with HTTP 401 (dg-error: "Invalid credentials."):')
    assert "lacks the `Token ` prefix; send Authorization: Token <api key>." in sentence
    assert "dgtest_0123" not in sentence


def test_unanswered_handshake():
    b = ScriptedSession(status=None)
    b.session.websocket = False
    b.hs.status = None
    assert diagnosed(b) == ("The WebSocket upgrade request (frame 4) got no HTTP response: check "
                            "the server address, any proxy, and the network path.")


def test_waited_for_server():
    b = ScriptedSession(query=LIVE)
    b.close("server", 1011, NET0001, 10.07)
    assert diagnosed(b) == ("Deepgram closed the stream with 1011 NET-0001 10.0 s after the 101 "
                            "because the client never sent a frame: send audio as soon as the "
                            "connection opens instead of waiting for a server message.")


def test_net0001_after_gap_beats_the_gap_itself():
    b = ScriptedSession(query=LIVE)
    for k in range(1, 31):
        b.client_binary(3200, 0.104 * k, frame=382 + k)
    b.close("server", 1011, NET0001, 13.125, frame=520)
    assert diagnosed(b) == (
        "Deepgram closed the stream with 1011 NET-0001 because the client went silent: the "
        "client's last frame was No. 412 at 12:00:03.120, 10.0 s before the close; keep sending "
        "audio (or silence), or send KeepAlive every few seconds during pauses.")


def test_keepalive_only():
    b = ScriptedSession(query=LIVE)
    b.client_json({"type": "KeepAlive"}, 3.0)
    b.close("server", 1011, NET0001, 13.1)
    assert diagnosed(b).startswith("Deepgram closed the stream with 1011 NET-0001 because the "
                                   "client sent only KeepAlive and never audio")


def test_data0000_with_sniffed_container():
    b = ScriptedSession(query={"model": "nova-3", "encoding": "opus"})
    b.client_binary(4000, 0.3, head=WEBM)
    b.close("server", 1008, "DATA-0000", 0.8)
    assert diagnosed(b) == (
        "Deepgram closed the stream with 1008 DATA-0000 because it could not decode the audio: "
        "the first audio payload (frame 7, 4000 bytes) is WebM/Matroska but encoding=opus was set;"
        " containerised audio must be sent without encoding.")


def test_net0000_names_the_request_id():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    b.close("server", 1011, NET0000, 12.0)
    sentence = diagnosed(b)
    assert sentence.startswith("Deepgram closed the stream with 1011 NET-0000 (Deepgram sent no "
                               "response within its timeout); the client had sent 0.10 s of audio")
    assert sentence.endswith("give Deepgram support the request id "
                             "0b6a9c33-1111-4222-8333-944455556666.")


def test_tts_close_code():
    b = ScriptedSession(path="/v1/speak", query={"model": "aura-2-thalia-en"})
    b.client_json({"type": "Speak", "text": "x" * 5000}, 0.1)
    b.close("server", 1009, "BIG-0001", 0.2)
    assert diagnosed(b) == (
        "Deepgram closed the stream with 1009 BIG-0001 (text has too many characters); the client sent "
        "5000 characters in 1 Speak message (largest 5000): split long text across several Speak "
        "messages and Flush between them.")


def test_server_error_message_comes_before_the_close():
    b = ScriptedSession(path="/v2/listen", query={"model": "flux-general-en", "encoding": "linear16",
                                                 "sample_rate": "16000"})
    b.server_json({"type": "Error", "code": "UNPARSABLE_CLIENT_MESSAGE",
                   "description": "Could not parse message"}, 0.2)
    b.close("server", 1011, NET0000, 0.3)
    assert diagnosed(b) == ('Deepgram reported an error at frame 7 (12:00:00.200): "Could not '
                            'parse message" (UNPARSABLE_CLIENT_MESSAGE); fix what it names and '
                            "reconnect.")


def test_abnormal_closure():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    b.tcp_end("rst", "server", 0.5)
    assert diagnosed(b) == (
        "The connection ended with a TCP RST from the server at frame 8 without a WebSocket close "
        "frame (client libraries report 1006); no CloseStream was sent, so pending transcripts "
        "were lost: look for a proxy or load-balancer idle timeout, a crash, or a network drop on "
        "the server side.")


def test_no_audio_received_beats_a_normal_close():
    b = ScriptedSession(query=LIVE)
    b.client_json({"type": "CloseStream"}, 0.2)
    b.server_json(metadata(0.0, EMPTY_SHA256, channels=0), 0.3)
    b.close("server", 1000, "", 0.31)
    assert diagnosed(b) == ("Deepgram received no audio (its Metadata at frame 8 has the SHA-256 "
                            "of empty input) and the client sent none: send audio on this socket "
                            "after it opens.")


def test_audio_undecodable():
    b = ScriptedSession(query={"model": "nova-3"})
    b.client_binary(3200, 0.1)
    b.client_json({"type": "CloseStream"}, 0.2)
    b.server_json(metadata(0.0, "9f" * 32), 0.3)
    b.close("server", 1000, "", 0.31)
    assert diagnosed(b) == ("Deepgram could not decode the audio (Metadata at frame 9 reports 0 s):"
                            " the first payload (frame 7) is headerless (raw) audio with no "
                            "encoding parameter; set encoding and sample_rate for raw audio, or "
                            "omit encoding for containerised audio.")


def test_gap_without_close_problem():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    b.client_binary(3200, 12.1)
    b.client_json({"type": "CloseStream"}, 12.2)
    b.server_json(metadata(0.2, "ab" * 32), 12.3)
    b.close("server", 1000, "", 12.31)
    assert diagnosed(b) == ("The client sent nothing for 12.0 s after frame 7 (12:00:00.100); "
                            "Deepgram closes a /v1/listen stream after 10 s without audio or a "
                            "text message (NET-0001), so send KeepAlive as a text frame every 3-5 s "
                            "(or silence) during pauses.")


@pytest.mark.parametrize("path,query,advice", [
    # Flux has no KeepAlive message; its timeout is a staff quote (py#618).
    ("/v2/listen", {"model": "flux-general-en", "encoding": "linear16", "sample_rate": "16000"},
     "Flux has no KeepAlive message (a JSON KeepAlive killed the socket, py#649): keep the "
     "connection alive with WebSocket pings or by sending silence (Deepgram staff quote a 60 s "
     "timeout; users saw closes after 20-30 s)."),
    ("/v1/agent/converse", {}, "send KeepAlive every 8 s while not sending audio to the Voice "
     "Agent (dg:/docs/agent-keep-alive; the idle limit itself is unconfirmed)."),
    ("/v1/speak", {}, "KeepAlive does not apply to /v1/speak (py#326) and its idle timeout is "
     "unconfirmed: send text when there is some, and open a new connection after a long pause."),
])
def test_gap_advice_is_the_endpoints(path, query, advice):
    b = ScriptedSession(path=path, query=query)
    b.client_binary(3200, 0.1)
    b.client_binary(3200, 12.1)
    b.close("client", 1000, "", 12.31)
    b.close("server", 1000, "", 12.32)
    diag = diagnosed(b)
    assert diag.startswith("The client sent nothing for 12.0 s after frame 7 (12:00:00.100); "), diag
    assert diag.endswith(advice), diag
    assert "10 s" not in diag


def test_empty_binary_frame():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    b.client_binary(0, 0.2)
    b.server_json(metadata(0.1, "ab" * 32), 0.3)
    b.close("server", 1000, "", 0.31)
    assert diagnosed(b) == ("The client sent an empty binary frame (frame 8 at 12:00:00.200), "
                            "which Deepgram treats as end of stream: skip zero-length audio "
                            "chunks before sending.")


def test_remaining_findings_by_severity():
    b = ScriptedSession(query=LIVE)
    for k in range(1, 11):
        b.client_binary(3200, 0.1 * k)
    b.close("client", 1000, "", 1.2)
    b.close("server", 1000, "", 1.25)
    sentence = diagnosed(b)
    assert sentence.startswith("The client closed the stream (close 1000 at frame 17, "
                               "12:00:01.200) without CloseStream")


def test_generic_websocket_wording():
    b = ScriptedSession(path="/chat", headers=[["Host", "example.com"]], dg_request_id=None)
    b.client_text("hi", 0.1)
    b.close("client", 1000, "", 0.2)
    b.close("server", 1000, "", 0.21)
    assert diagnosed(b) == "WebSocket session completed normally: close 1000 from the client."

    b = ScriptedSession(path="/chat", headers=[["Host", "example.com"]], dg_request_id=None)
    b.close("server", 1011, "NET-0001", 10.2)
    sentence = diagnosed(b)
    assert sentence == ('The server closed the connection with 1011 (Internal Error) "NET-0001" at '
                        "frame 7 (12:00:10.200): check the server's logs for that close reason.")
    assert "Deepgram" not in sentence

    b = ScriptedSession(path="/chat", status=403, reason="Forbidden",
                       headers=[["Host", "example.com"]], dg_request_id=None)
    assert diagnosed(b) == ("Handshake rejected with HTTP 403 Forbidden: the server refused the "
                            "WebSocket upgrade; check the URL, credentials and headers it expects.")

    b = ScriptedSession(path="/chat", headers=[["Host", "example.com"]], dg_request_id=None)
    b.client_text("hi", 0.1)
    b.client_binary(0, 0.2)
    assert "some servers treat as end of stream" in diagnosed(b)


def test_open_at_capture_end_and_tts_ok():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    assert diagnosed(b) == ("No problems found; the capture ended while the WebSocket was still "
                            "open.")
    b = ScriptedSession(path="/v1/speak", query={"model": "aura-2-thalia-en"})
    b.client_json({"type": "Speak", "text": "hi"}, 0.1)
    b.client_json({"type": "Close"}, 0.2)
    b.close("server", 1000, "", 0.25)
    assert diagnosed(b) == "Stream completed normally: Close, close 1000."


def test_generic_findings_are_used_when_nothing_else_applies():
    b = ScriptedSession(path="/chat", headers=[["Host", "example.com"]], dg_request_id=None)
    s = b.finish()
    s.findings.append(Finding("bad-accept", "error", "Sec-WebSocket-Accept does not match the key.",
                              frames=[6]))
    assert diagnose(s) == "Sec-WebSocket-Accept does not match the key."


def test_connection_without_websocket():
    from analyzer.model import Session
    assert diagnose(Session(index=0, client="a:1", server="b:2", tcp_stream=0)) == (
        "No WebSocket handshake or frames were seen on this connection.")


def test_data0000_after_json_in_binary_gives_the_fix():
    b = ScriptedSession(query=LIVE)
    b.client_binary(97, 0.1, head=b'{"transcript_request": true, "note": "this is not audio", "n": 1}')
    b.close("server", 1008, "DATA-0000: The payload cannot be decoded as audio.", 0.2)
    assert diagnosed(b) == (
        "Deepgram closed the stream with 1008 DATA-0000 because it could not decode the audio: "
        "the client's binary frames were JSON text, not audio (first No. 7); send JSON messages "
        "as text frames and only audio as binary frames.")


def test_encrypted_connection_without_keys():
    from analyzer.model import Session
    s = Session(index=0, client="a:1", server="b:443", tcp_stream=0, transport="tls")
    assert diagnose(s).startswith("The connection is TLS-encrypted and no key log was given")
