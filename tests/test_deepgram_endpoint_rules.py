"""Endpoint-aware Deepgram rules on synthetic sessions (analyzer/findings/deepgram_endpoint_rules.py).

Each case builds one session the way the pipeline would and checks the exact finding
ids, frames and details; the recorded captures cover the same rules end to end in
tests/test_deepgram_scenarios.py.
"""
from __future__ import annotations

import pytest

from analyzer.deepgram.diagnosis import diagnose
from analyzer.deepgram.endpoints import listen_v1
from tests.support.deepgram_session import T0, ScriptedSession, run_deepgram_rules

FLUX = {"model": "flux-general-en", "encoding": "linear16", "sample_rate": "16000"}
LIVE = {"model": "nova-3", "encoding": "linear16", "sample_rate": "16000"}
AGENT = "/v1/agent/converse"


def finish(b: ScriptedSession):
    s = b.finish()
    found = run_deepgram_rules(s)
    s.diagnosis = diagnose(s)
    return s, found


def ids(found) -> list:
    return sorted(f.id for f in found)


def one(found, fid):
    (f,) = [f for f in found if f.id == fid]
    return f


def agent_start(b: ScriptedSession) -> None:
    b.server_json({"type": "Welcome", "request_id": "r"}, 0.01)


def test_agent_second_settings():
    b = ScriptedSession(path=AGENT)
    agent_start(b)
    first = b.client_json({"type": "Settings"}, 0.1)
    b.server_json({"type": "SettingsApplied"}, 0.2)
    second = b.client_json({"type": "Settings"}, 0.3)
    b.close("client", 1000, "", 0.4)
    b.close("server", 1000, "", 0.41)
    s, found = finish(b)
    assert ids(found) == ["second-settings"]
    f = one(found, "second-settings")
    assert f.frames == [first, second] and f.details == {"count": 2}
    assert s.diagnosis == f.message


def test_agent_settings_never_applied_and_first_message():
    b = ScriptedSession(path=AGENT)
    agent_start(b)
    ka = b.client_json({"type": "KeepAlive"}, 0.1)
    settings = b.client_json({"type": "Settings"}, 0.2)
    b.close("client", 1000, "", 5.0)
    b.close("server", 1000, "", 5.01)
    s, found = finish(b)
    assert ids(found) == ["first-message-not-settings", "no-settings-applied"]
    assert one(found, "first-message-not-settings").frames == [ka]
    assert one(found, "no-settings-applied").frames == [settings]


def test_agent_client_spoke_before_welcome():
    b = ScriptedSession(path=AGENT)
    settings = b.client_json({"type": "Settings"}, 0.05)
    welcome = b.server_json({"type": "Welcome", "request_id": "r"}, 0.1)
    b.server_json({"type": "SettingsApplied"}, 0.2)
    b.close("client", 1000, "", 0.4)
    b.close("server", 1000, "", 0.41)
    s, found = finish(b)
    assert ids(found) == ["sent-before-welcome"]  # Welcome was still the first server message
    f = one(found, "sent-before-welcome")
    assert f.frames == [settings, welcome]


def test_audio_between_settings_and_settings_applied_is_a_warning():
    b = ScriptedSession(path=AGENT)
    agent_start(b)
    b.client_json({"type": "Settings"}, 0.1)
    audio = b.client_binary(3200, 0.15)
    b.server_json({"type": "SettingsApplied"}, 0.2)
    b.client_binary(3200, 0.25)
    b.close("client", 1000, "", 0.4)
    b.close("server", 1000, "", 0.41)
    s, found = finish(b)
    assert ids(found) == ["audio-before-settings"]
    f = one(found, "audio-before-settings")
    assert (f.severity, f.frames, f.details) == ("warning", [audio],
                                                 {"count": 1, "bytes": 3200, "before": "SettingsApplied"})


def test_flux_greeting_missing_and_statusless_close_without_closestream():
    b = ScriptedSession(path="/v2/listen", query=FLUX)
    b.client_binary(2560, 0.1)
    close = b.close("server", None, "", 0.5)
    b.close("client", None, "", 0.51)
    s, found = finish(b)
    assert ids(found) == ["no-greeting", "statusless-close"]
    assert one(found, "statusless-close").frames == [close]
    assert s.diagnosis == one(found, "statusless-close").message


def test_flux_statusless_close_after_closestream_is_normal():
    b = ScriptedSession(path="/v2/listen", query=FLUX)
    b.server_json({"type": "Connected", "request_id": "r", "sequence_id": 0}, 0.01)
    b.client_binary(2560, 0.1)
    b.server_json({"type": "TurnInfo", "event": "StartOfTurn", "turn_index": 0,
                   "transcript": "hello", "sequence_id": 1}, 0.2)
    b.client_json({"type": "CloseStream"}, 0.3)
    b.server_json({"type": "TurnInfo", "event": "Update", "turn_index": 0,
                   "transcript": "hello there", "sequence_id": 2}, 0.35)
    b.close("server", None, "", 0.4)
    b.close("client", None, "", 0.41)
    s, found = finish(b)
    assert found == []
    assert s.transcript == "hello there"
    assert s.diagnosis == ("Stream completed normally: CloseStream, last Update as the final "
                           "transcript, close without a code.")


def test_flux_client_closing_without_closestream_gets_flux_wording():
    b = ScriptedSession(path="/v2/listen", query=FLUX)
    b.server_json({"type": "Connected", "request_id": "r", "sequence_id": 0}, 0.01)
    b.client_binary(2560, 0.1)
    b.close("client", 1000, "", 0.3)
    b.close("server", 1000, "", 0.31)
    s, found = finish(b)
    f = one(found, "no-closestream")
    assert "Flux sends no Metadata" in f.message and "wait for Metadata" not in f.message


def test_tts_keepalive_is_not_applicable():
    b = ScriptedSession(path="/v1/speak", query={})
    ka = b.client_json({"type": "KeepAlive"}, 0.1)
    b.client_json({"type": "Close"}, 0.2)
    b.close("server", 1000, "", 0.3)
    s, found = finish(b)
    f = one(found, "keepalive-not-applicable")
    assert (f.severity, f.frames) == ("info", [ka])
    assert "py#326" in f.message and "unconfirmed" in f.message


@pytest.mark.parametrize("when,expected", [
    # Before 2026-10-19 a successful Configure got no reply (dg:/docs/configure, Oct 2).
    (listen_v1.CONFIGURE_REPLIES_SINCE - 86400 - T0, []),
    (listen_v1.CONFIGURE_REPLIES_SINCE + 86400 - T0, ["configure-unanswered"]),
])
def test_listen_configure_reply_is_judged_by_the_capture_date(when, expected):
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, when)
    b.client_json({"type": "Configure", "keyterms": ["a"]}, when + 0.1)
    b.client_binary(3200, when + 0.2)
    b.client_json({"type": "CloseStream"}, when + 0.3)
    b.close("server", 1000, "", when + 0.4)
    s, found = finish(b)
    assert [f.id for f in found if f.id.startswith("configure")] == expected
    if expected:
        assert "since 2026-10-19" in one(found, "configure-unanswered").message


def test_listen_configure_error_is_a_reply_and_explained():
    b = ScriptedSession(query=LIVE)
    b.client_json({"type": "Configure", "keyterms": ["a"]}, 0.1)
    err = b.server_json({"type": "Error", "variant": "InvalidConfigureMessage",
                         "code": "KeytermsNotSupported", "description": "no keyterms"}, 0.2)
    b.close("client", 1000, "", 0.3)
    b.close("server", 1000, "", 0.31)
    s, found = finish(b)
    assert "configure-unanswered" not in ids(found)
    f = one(found, "server-error")
    assert f.frames == [err] and f.details["code"] == "KeytermsNotSupported"
    assert "keyterms work on Nova-3 only" in f.message


def test_flux_configure_failure_is_explained():
    b = ScriptedSession(path="/v2/listen", query=FLUX)
    b.server_json({"type": "Connected", "request_id": "r", "sequence_id": 0}, 0.01)
    b.client_json({"type": "Configure", "thresholds": {"eot_threshold": 2}}, 0.1)
    fail = b.server_json({"type": "ConfigureFailure", "request_id": "r", "sequence_id": 1,
                          "code": "INVALID_THRESHOLD", "description": "bad"}, 0.2)
    b.client_json({"type": "CloseStream"}, 0.3)
    b.close("server", None, "", 0.4)
    s, found = finish(b)
    assert ids(found) == ["configure-failed"]
    f = one(found, "configure-failed")
    assert f.frames == [fail] and f.details == {"code": "INVALID_THRESHOLD"}
    assert "the stream keeps its previous settings" in f.message


def test_regional_host_has_no_configure():
    b = ScriptedSession(query=LIVE, headers=[["Host", "api.eu.deepgram.com"],
                                            ["Authorization", "Token x"]])
    b.client_json({"type": "Configure", "keyterms": ["a"]}, 0.1)
    b.client_json({"type": "CloseStream"}, 0.2)
    b.close("server", 1000, "", 0.3)
    s, found = finish(b)
    assert "configure-regional" in ids(found)


def test_speak_v2_error_codes_are_explained():
    b = ScriptedSession(path="/v2/speak", query={"model": "flux-thalia-en"})
    b.server_json({"type": "Connected", "request_id": "r"}, 0.01)
    err = b.server_json({"type": "Error", "code": "NET-0004", "description": "idle"}, 60.1)
    b.close("server", 1000, "", 60.2)
    s, found = finish(b)
    f = one(found, "server-error")
    assert f.frames == [err]
    assert f.message.endswith(": no client message for 60 s; send text, or WebSocket pings (a "
                              "ping/pong resets the timer), at least every 60 s.")
    assert s.diagnosis.endswith("(NET-0004): no client message for 60 s; send text, or WebSocket "
                                "pings (a ping/pong resets the timer), at least every 60 s.")


def test_close_after_an_agent_error_is_not_called_uncatalogued():
    b = ScriptedSession(path=AGENT)
    agent_start(b)
    err = b.server_json({"type": "Error", "code": "INVALID_SETTINGS", "description": "bad"}, 0.2)
    close = b.close("server", 1008, "", 0.3)
    s, found = finish(b)
    f = one(found, "deepgram-close")
    assert (f.severity, f.frames) == ("info", [err, close])
    assert "the close code that follows an Error is unconfirmed" in f.message
    assert s.diagnosis.startswith(f"Deepgram reported an error at frame {err}")


def test_flux_sequence_gap():
    b = ScriptedSession(path="/v2/listen", query=FLUX)
    b.server_json({"type": "Connected", "request_id": "r", "sequence_id": 0}, 0.01)
    b.client_binary(2560, 0.1)
    b.server_json({"type": "TurnInfo", "event": "StartOfTurn", "sequence_id": 1}, 0.2)
    skipped = b.server_json({"type": "TurnInfo", "event": "Update", "sequence_id": 3}, 0.3)
    b.client_json({"type": "CloseStream"}, 0.4)
    b.close("server", None, "", 0.5)
    s, found = finish(b)
    assert ids(found) == ["sequence-gap"]
    f = one(found, "sequence-gap")
    assert f.frames == [skipped] and f.details == {"gaps": 1, "expected": 2, "got": 3}


@pytest.mark.parametrize("audio,speak,expected", [
    ({"output": {"encoding": "mp3"}}, None, ["settings-invalid"]),  # Flux TTS by default
    ({"output": {"encoding": "linear16", "container": "wav"}}, None, ["settings-invalid"]),
    ({"output": {"encoding": "mp3"}}, {"provider": {"type": "deepgram", "model": "aura-2"}}, []),
    ({"input": {"encoding": "wav", "sample_rate": 16000}}, None, ["settings-invalid"]),
    ({"input": {"encoding": "mulaw", "sample_rate": 8000},
      "output": {"encoding": "alaw", "container": "none"}}, None, []),
])
def test_agent_settings_audio(audio, speak, expected):
    b = ScriptedSession(path=AGENT)
    agent_start(b)
    settings = {"type": "Settings", "audio": audio, "agent": {} if speak is None else {"speak": speak}}
    b.client_json(settings, 0.1)
    b.server_json({"type": "SettingsApplied"}, 0.2)
    b.close("client", 1000, "", 0.4)
    b.close("server", 1000, "", 0.41)
    s, found = finish(b)
    assert ids(found) == expected


def test_net0000_after_configure_names_the_keyterm_limit():
    b = ScriptedSession(query=LIVE)
    b.client_binary(3200, 0.1)
    conf = b.client_json({"type": "Configure", "keyterms": ["a"] * 600}, 0.2)
    b.client_binary(3200, 0.3)
    b.close("server", 1011, "Deepgram did not provide a response message within the timeout "
            "window. See https://dpgr.am/net0000", 30.3)
    s, found = finish(b)
    f = one(found, "deepgram-close")
    assert f.details["configure_frame"] == conf
    assert (f"it had sent Configure (last at frame {conf}, 30 s before the close): keyterms over "
            "the 500-token limit make results stop and NET-0000 follow about 30 s later") in f.message


def test_client_message_texts_use_the_endpoints_messages():
    b = ScriptedSession(path="/v1/speak", query={})
    b.client_binary(20, 0.1, head=b'{"type":"KeepAlive"}')
    b.client_text("hello", 0.2)
    b.close("server", 1003, "MESSAGE-0000", 0.3)
    s, found = finish(b)
    kb = one(found, "keepalive-binary")
    assert "accepts only text frames (a binary frame gets close 1003 MESSAGE-0000)" in kb.message
    assert "noise" not in kb.message and "/v1/speak has no KeepAlive message" in kb.message
    assert '{"type":"Close"}' in one(found, "text-not-json").message

    b = ScriptedSession(path="/v2/listen", query=FLUX)
    b.client_text("hello", 0.2)
    b.close("client", 1000, "", 0.3)
    s, found = finish(b)
    assert '{"type":"CloseStream"}' in one(found, "text-not-json").message


def test_agent_container_audio_against_declared_raw_input():
    from analyzer.deepgram.audio import wav_header
    b = ScriptedSession(path=AGENT)
    agent_start(b)
    b.client_json({"type": "Settings", "audio": {"input": {"encoding": "linear16",
                                                            "sample_rate": 16000}}}, 0.1)
    b.server_json({"type": "SettingsApplied"}, 0.2)
    first = b.client_binary(3244, 0.3, head=wav_header(16000, 1, 2, 3200))
    b.close("client", 1000, "", 0.4)
    b.close("server", 1000, "", 0.41)
    s, found = finish(b)
    assert ids(found) == ["agent-audio-format"]
    f = one(found, "agent-audio-format")
    assert f.frames == [first] and f.details == {"format": "wav", "declared": "linear16"}
    assert "USER_AUDIO_FORMAT" in f.message
