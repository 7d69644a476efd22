"""The close-code catalogue: matching real reason payloads, per endpoint."""
import pytest

from analyzer.deepgram.closecodes import CATALOGUE, STT_DOC, TTS_DOC, match_close, reason_link

NET0001 = ("Deepgram did not receive audio data or a text message within the timeout window. "
           "See https://dpgr.am/net0001")
NET0000 = ("Deepgram did not provide a response message within the timeout window. "
           "See https://dpgr.am/net0000")


@pytest.mark.parametrize("code,reason,endpoint,name", [
    (1011, NET0001, "listen", "NET-0001"),
    (1011, NET0000, "listen", "NET-0000"),
    (1011, "NET-0001", "listen", "NET-0001"),
    (1008, "DATA-0000", "listen", "DATA-0000"),
    (1008, "Deepgram was unable to decode the audio (DATA-0000)", "listen", "DATA-0000"),
    (1000, "", "listen", "normal"),
    (1000, "anything", "speak", "normal"),
    (1003, "MESSAGE-0000", "speak", "MESSAGE-0000"),
    (1008, "DATA-0000", "speak", "DATA-0000"),
    (1008, "DATA-0001", "speak", "DATA-0001"),
    (1009, "BIG-0000", "speak", "BIG-0000"),
    (1009, "BIG-0001", "speak", "BIG-0001"),
    (1011, "NET-0000", "speak", "NET-0000"),
    (1011, "NET-0001", "speak", "NET-0001"),
    (1011, "NET-0002", "speak", "NET-0002"),
    (1011, "NET-0003", "speak", "NET-0003"),
    (1011, NET0001, "other", "NET-0001"),  # unknown path: STT first
    (1009, "BIG-0001", "other", "BIG-0001"),  # ... then TTS
])
def test_matches(code, reason, endpoint, name):
    entry = match_close(code, reason, endpoint)
    assert entry is not None and entry.name == name


def test_endpoint_picks_the_family():
    stt = match_close(1011, NET0001, "listen")
    tts = match_close(1011, "NET-0001", "speak")
    assert (stt.family, tts.family) == ("stt", "tts")
    assert stt.title == "no audio or text message from the client for 10 s"
    assert tts.title == "receive failed (the client sent nothing in time)"
    assert stt.doc == STT_DOC and tts.doc == TTS_DOC
    assert match_close(1011, "NET-0002", "listen") is None  # a TTS-only token
    assert match_close(1003, "MESSAGE-0000", "listen") is None


@pytest.mark.parametrize("code,reason", [
    (1011, ""), (1011, "internal error"), (1008, "policy"), (1008, NET0001), (4000, "DATA-0000"),
    (None, ""),
])
def test_code_and_token_must_both_match(code, reason):
    assert match_close(code, reason, "listen") is None


def test_entries_carry_seed_steps_and_links():
    net1 = match_close(1011, NET0001, "listen")
    assert net1.short_link == "https://dpgr.am/net0001"
    assert net1.steps == (
        "Ensure audio is sent within 10 seconds of opening the connection.",
        "You can send silent audio to keep the connection alive.",
        "Using KeepAlive messages alone will not prevent closure; you must send at least one "
        "audio message.",
        "Be sure to send a Close Stream message when done.",
        "Test your network with cURL and Deepgram-hosted audio. See Generating Transcripts from "
        "the Terminal for more information.",
        "Use a tool like Wireshark to confirm audio is leaving your network.")
    net0 = match_close(1011, NET0000, "listen")
    assert net0.short_link == "https://dpgr.am/net0000"
    assert net0.steps[1] == "Retry your request."
    data = match_close(1008, "DATA-0000", "listen")
    assert data.explanation == ("The payload cannot be decoded as audio. The payload either is "
                                "not audio data or is a codec unsupported by Deepgram.")
    assert len(data.steps) == 6 and data.steps[4] == (
        "Ensure Encoding and Sample Rate parameters are set correctly.")
    # No Deepgram source has a "1002 DATA-0000" (every doc version gives 1008).
    assert match_close(1002, "DATA-0000", "listen") is None


def test_catalogue_covers_the_protocol_reference():
    have = {(e.family, e.code, e.name) for e in CATALOGUE}
    assert have == {
        ("stt", 1000, "normal"), ("stt", 1008, "DATA-0000"),
        ("stt", 1011, "NET-0000"), ("stt", 1011, "NET-0001"),
        ("tts", 1000, "normal"), ("tts", 1003, "MESSAGE-0000"), ("tts", 1008, "DATA-0000"),
        ("tts", 1008, "DATA-0001"), ("tts", 1009, "BIG-0000"), ("tts", 1009, "BIG-0001"),
        ("tts", 1011, "NET-0000"), ("tts", 1011, "NET-0001"), ("tts", 1011, "NET-0002"),
        ("tts", 1011, "NET-0003")}
    for e in CATALOGUE:
        assert e.explanation and e.doc.startswith("https://developers.deepgram.com/docs/")
        assert e.steps or e.name == "normal"
        assert e.to_json()["name"] == e.name


def test_reason_link():
    assert reason_link(NET0001) == "https://dpgr.am/net0001"
    assert reason_link("See https://dpgr.am/net0000.") == "https://dpgr.am/net0000"
    assert reason_link("NET-0001") is None
    assert reason_link(None) is None


@pytest.mark.parametrize("endpoint", ["listen-v2", "speak-v2", "agent"])
def test_flux_and_agent_have_no_close_payload_catalogue(endpoint):
    # They report errors as Error messages, not close-frame payloads (reference): a
    # /v1/listen token in their close is not explained with /v1/listen's meaning.
    assert match_close(1011, NET0001, endpoint) is None
    assert match_close(1011, "NET-0000", endpoint) is None
    assert match_close(1000, "", endpoint) is None
