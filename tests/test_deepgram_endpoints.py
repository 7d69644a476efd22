"""The per-endpoint knowledge (analyzer/deepgram/endpoints/) against the protocol reference.

The code lists below are copied from the reference (/work/shared/docs/deepgram-protocol.md),
so a code dropped from a module, or one the module invents, fails here.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.cli import main
from analyzer.deepgram import endpoints as ep
from analyzer.deepgram.messages import CLIENT_TYPES, SERVER_TYPES, error_fields

CAPTURES = Path(__file__).resolve().parent.parent / "captures"

AGENT_ERRORS = """INTERNAL_SERVER_ERROR, CLIENT_MESSAGE_TIMEOUT, UNPARSABLE_CLIENT_MESSAGE,
  NON_SETTINGS_MESSAGE_BEFORE_SETTINGS, SETTINGS_ALREADY_APPLIED, INVALID_SETTINGS,
  FAILED_TO_START_LISTENING, ASR_CONNECTION_CLOSED, ASR_DRIVER_TIMEOUT, USER_AUDIO_FORMAT,
  FAILED_TO_SPEAK, FAILED_TO_THINK, SERVER_GOING_AWAY, NON_EXISTENT_FUNCTION_CALLED,
  AGENT_ID_NOT_SUPPORTED, INVALID_AGENT_ID, MAXIMUM_SESSION_LENGTH_REACHED"""
AGENT_WARNINGS = """INJECT_AGENT_MESSAGE_DURING_USER_SPEECH, INJECT_AGENT_MESSAGE_DURING_AGENT_SPEECH,
  PROMPT_TOO_LONG, THINK_REQUEST_FAILED, SPEAK_REQUEST_FAILED, FUNCTION_CALL_FAILED,
  SLOW_THINK_REQUEST, SLOW_SPEAK_REQUEST, FORCE_END_TURN_UNSUPPORTED, GPT_4O_STREAM_END_ERROR,
  MAXIMUM_SESSION_LENGTH_APPROACHING"""
SPEAK_V2_WARNINGS = """NO_ACTIVE_SPEECH, SYNTHESIS_RETRYING, NO_SYNTHESIZABLE_TEXT, NO_AUDIO_GENERATED,
  INTERRUPT_IN_PROGRESS, INVALID_INTERRUPT_OFFSET"""
SPEAK_V2_ERRORS = """MESSAGE-0000, DATA-0000, DATA-0002, BIG-0000, NET-0000, NET-0001, NET-0002, NET-0003,
  NET-0004"""


def names(text: str) -> set:
    return {n.strip() for n in text.replace("\n", " ").split(",")}


@pytest.mark.parametrize("endpoint,kind,listed", [
    ("agent", "errors", AGENT_ERRORS), ("agent", "warnings", AGENT_WARNINGS),
    ("speak-v2", "warnings", SPEAK_V2_WARNINGS), ("speak-v2", "errors", SPEAK_V2_ERRORS),
])
def test_every_documented_code_is_explained(endpoint, kind, listed):
    table = getattr(ep.knowledge(endpoint), kind)
    assert set(table) == names(listed)
    for code in table.values():
        assert code.meaning and code.step
        assert code.fatal == (kind == "errors")
    # the one code whose meaning the reference leaves open says so
    if endpoint == "speak-v2" and kind == "errors":
        assert table["DATA-0002"].unconfirmed and "unconfirmed" in table["DATA-0002"].meaning


def test_who_speaks_first_and_how_a_stream_ends():
    k = {e: ep.knowledge(e) for e in ep.DEEPGRAM}
    assert {e: (x.greeting, x.greeting_confirmed) for e, x in k.items()} == {
        "listen": (None, True), "listen-v2": ("Connected", True), "speak": ("Metadata", False),
        "speak-v2": ("Connected", True), "agent": ("Welcome", True)}
    assert {e: (x.end_message, x.end_summary, x.normal_closes) for e, x in k.items()} == {
        "listen": ("CloseStream", "Metadata", frozenset({1000})),
        "listen-v2": ("CloseStream", None, frozenset({None, 1000})),  # no Metadata, no status
        "speak": ("Close", None, frozenset({1000})),
        "speak-v2": ("Close", "SessionMetadata", frozenset({None, 1000})),
        "agent": (None, None, frozenset({1000}))}
    assert {e: (x.keepalive_message, x.idle_timeout) for e, x in k.items()} == {
        "listen": ("KeepAlive", 10.0), "listen-v2": (None, None), "speak": (None, None),
        "speak-v2": (None, 60.0), "agent": ("KeepAlive", None)}
    # unconfirmed facts are worded as such
    assert "unconfirmed" in k["speak"].silence_advice
    assert "unconfirmed" in k["agent"].silence_advice and "8 s" in k["agent"].silence_advice
    assert "10 s" not in k["listen-v2"].silence_advice and "pings" in k["listen-v2"].silence_advice


def test_message_surface():
    for t in ("Configure", "UpdateListen", "ForceEndTurn", "FunctionCallResponse", "Interrupt"):
        assert t in CLIENT_TYPES
    for t in ("ConfigureSuccess", "ConfigureFailure", "Error", "ListenUpdated", "LatencyReport",
              "FunctionCallResponse", "FunctionCallCancelled", "SessionMetadata",
              "SpeechMetadata", "SpeechInterrupted"):
        assert t in SERVER_TYPES
    assert "Configure" in ep.knowledge("listen").client_messages
    assert "KeepAlive" not in ep.knowledge("listen-v2").client_messages  # Flux has none


def test_warning_and_error_shapes():
    # TTS Warning as sent on the wire (py#617) and as the spec writes it
    assert error_fields({"type": "Warning", "warn_code": "EXCESSIVE_FLUSH",
                         "warn_msg": "Rate limit exceeded for flushes. Please try again later."}) == {
        "code": "EXCESSIVE_FLUSH", "description": "Rate limit exceeded for flushes. Please try again later."}
    assert error_fields({"type": "Warning", "code": "NO_ACTIVE_SPEECH", "description": "x"}) == {
        "code": "NO_ACTIVE_SPEECH", "description": "x"}
    # /v1/listen Configure errors: the SchemaError has only a variant (dg:/docs/configure)
    assert error_fields({"type": "Error", "variant": "SchemaError", "description": "Could not "
                         "deserialize last text message: unknown field `x`", "message": "{}"}) == {
        "code": "SchemaError", "variant": "SchemaError",
        "description": "Could not deserialize last text message: unknown field `x`"}


def test_linear32_export_says_which_sample_format_it_assumed(tmp_path, monkeypatch, capsys):
    blob = (CAPTURES / "dg_success.pcap").read_bytes()
    assert blob.count(b"encoding=linear16") == 1
    path = tmp_path / "l32.pcap"
    path.write_bytes(blob.replace(b"encoding=linear16", b"encoding=linear32"))
    monkeypatch.chdir(tmp_path)
    assert main(["audio", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("l32.session1.wav: WAV (linear32, 16000 Hz, 1 channel)")
    assert ("linear32 written as 32-bit signed integer PCM; Deepgram's documentation also calls "
            "it 32-bit float (unconfirmed which)") in out


def test_speak_v2_audio_exports_from_the_server(tmp_path, monkeypatch, capsys):
    import json
    import wave
    exp = json.loads((CAPTURES / "speak_v2.expected.json").read_text())
    monkeypatch.chdir(tmp_path)
    assert main(["audio", str(CAPTURES / "speak_v2.pcap")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("speak_v2.session1.wav: WAV (linear16, 16000 Hz, 1 channel)")
    with wave.open(str(tmp_path / "speak_v2.session1.wav")) as w:
        frames = w.getnframes()
    assert frames * 2 == exp["scenario"]["sessions"][0]["audio_bytes_received"]
