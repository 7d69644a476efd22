"""Every secret place the protocol reference lists, redacted in every output format.

A crafted capture (two sessions) puts a distinct secret in each place of the
reference's "Secrets to redact" list; every `dgcap report` format, the live dashboard
and `dgcap audio` (file names and notes) must show none of them, while a control run
with --show-secrets proves each one does reach the output when not redacted.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from analyzer.commands.report import FORMATS
from analyzer.commands.watch import _redactor
from analyzer.live.dashboard import Status, render
from analyzer.live.state import LiveState
from analyzer.pipeline import CaptureAnalyzer, Options
from analyzer.redact import redact_json_text, redact_text

from test_limits import PcapWriter, Tcp, upgrade, ws_frame
from test_watch_units import file_packets

ROOT = Path(__file__).resolve().parents[1]
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwbGFjZXMtdGVzdCIsImV4cCI6MTgwMDAwMDAwMH0"
       ".Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5")
PLACES = {
    "Authorization Token": "dgplc_a1b2c3d4e5f60718293a4b5c6d7e8f90",
    "Sec-WebSocket-Protocol bearer JWT": JWT,
    "callback user:pass@ password": "cbPassw0rd_9a8b7c6d",
    "callback token query parameter": "cbtok_f0e1d2c3b4a59687",
    "SchemaError message echo": "schemaecho_5e4d3c2b1a09f8e7",
    "think endpoint.headers authorization": "sk-think-0123456789abcdefABCDEF",
    "think endpoint.url api_key": "urlkey_7766554433221100aa",
    "functions[].endpoint.headers x-goog-api-key": "AIzaPlaces0123456789abcdefghijk",
    "function URL user:pass@ password": "fnPassw0rd_1a2b3c4d",
    "speak endpoint.headers xi-api-key": "xi_places_0123456789abcdef",
    "speak endpoint.headers custom name": "custhdr_0f1e2d3c4b5a6978",
    "aws credentials access_key_id": "AKIAPLACES0123456789",
    "aws credentials secret_access_key": "awsPlacesSecret0123456789abcdefghijkl",
    "aws credentials session_token": "awsPlacesSession0123456789abcdefghij",
    "UpdateSpeak endpoint.headers x-api-key": "sk_car_places0123456789abc",
}
WINDOW = 12


def settings() -> dict:
    p = PLACES
    return {"type": "Settings", "audio": {"input": {"encoding": "linear16", "sample_rate": 16000}},
            "agent": {
                "think": {"provider": {"type": "open_ai", "model": "gpt-4o-mini"},
                          "endpoint": {"url": "https://llm.example.com/v1?api_key="
                                              + p["think endpoint.url api_key"],
                                       "headers": {"authorization": "Bearer "
                                                   + p["think endpoint.headers authorization"]}},
                          "functions": [{"name": "f", "endpoint": {
                              "url": "https://fnuser:" + p["function URL user:pass@ password"]
                                     + "@fn.example.com/x",
                              "headers": {"x-goog-api-key":
                                          p["functions[].endpoint.headers x-goog-api-key"]}}}]},
                "speak": [
                    {"provider": {"type": "eleven_labs"},
                     "endpoint": {"url": "wss://api.elevenlabs.io/v1",
                                  "headers": {"xi-api-key": p["speak endpoint.headers xi-api-key"],
                                              "X-Vendor-Auth": p["speak endpoint.headers custom name"]}}},
                    {"provider": {"type": "aws_polly", "credentials": {
                        "type": "STS", "region": "us-east-1",
                        "access_key_id": p["aws credentials access_key_id"],
                        "secret_access_key": p["aws credentials secret_access_key"],
                        "session_token": p["aws credentials session_token"]}}}]}}


def write_capture(path: Path) -> None:
    w = PcapWriter(path)
    p = PLACES
    # Session 1: /v1/listen with a callback carrying credentials, a Configure with an
    # unknown field that the server's SchemaError echoes back.
    listen = Tcp(w, cport=50001)
    cb = ("https%3A%2F%2Fcbuser%3A" + p["callback user:pass@ password"]
          + "%40hooks.example.com%2Fdg%3Ftoken%3D" + p["callback token query parameter"])
    upgrade(listen, path=f"/v1/listen?encoding=linear16&sample_rate=16000&callback={cb}",
            request_headers=(("Authorization", "Token " + p["Authorization Token"]),),
            response_headers=(("dg-request-id", "places-0001"),))
    for _ in range(3):
        listen.send(0, ws_frame(2, bytes(range(256)) * 12, True))
    configure = json.dumps({"type": "Configure", "keyterms": ["x"],
                            "api_key": p["SchemaError message echo"]})
    listen.send(0, ws_frame(1, configure.encode(), True))
    listen.send(1, ws_frame(1, json.dumps({
        "type": "Error", "variant": "SchemaError", "message": configure,
        "description": "Could not deserialize last text message: unknown field `api_key`"}).encode(),
        False))
    listen.send(0, ws_frame(1, b'{"type":"CloseStream"}', True))
    listen.send(1, ws_frame(8, b"\x03\xe8", False))
    listen.send(0, ws_frame(8, b"\x03\xe8", True))
    listen.close()
    # Session 2: the Voice Agent, authenticated with a bearer JWT in the subprotocol
    # (after the caller's own protocol, as the JS SDK sends it).
    agent = Tcp(w, cport=50002)
    upgrade(agent, path="/v1/agent/converse",
            request_headers=(("Sec-WebSocket-Protocol", f"chat, bearer, {JWT}, "
                              "x-deepgram-session-id, 6f1c2d3e-0000-4000-8000-000000000001"),),
            response_headers=(("Sec-WebSocket-Protocol", "bearer"),))
    agent.send(1, ws_frame(1, b'{"type":"Welcome","request_id":"places-0002"}', False))
    agent.send(0, ws_frame(1, json.dumps(settings()).encode(), True))
    agent.send(1, ws_frame(1, b'{"type":"SettingsApplied"}', False))
    agent.send(0, ws_frame(1, json.dumps({"type": "UpdateSpeak", "speak": {
        "provider": {"type": "cartesia"}, "endpoint": {"url": "https://api.cartesia.ai/tts",
        "headers": {"x-api-key": p["UpdateSpeak endpoint.headers x-api-key"]}}}}).encode(), True))
    agent.send(1, ws_frame(1, b'{"type":"SpeakUpdated"}', False))
    agent.send(0, ws_frame(8, b"\x03\xe8", True))
    agent.send(1, ws_frame(8, b"\x03\xe8", False))
    agent.close()
    w.close()


def windows(secret: str) -> set:
    return {secret[i:i + WINDOW] for i in range(len(secret) - WINDOW + 1)}


def leaked(text: str) -> dict:
    return {place: hit for place, secret in PLACES.items()
            for hit in [next((w for w in sorted(windows(secret)) if w in text), None)] if hit}


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("places") / "places.pcap"
    write_capture(path)
    return path


def report(capture: Path, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    out = capture.parent / "out"
    proc = subprocess.run([sys.executable, "-m", "analyzer.cli", "report", "-q", "--transcript",
                           "-o", str(out), *args, str(capture)],
                          capture_output=True, env=env, cwd=ROOT, timeout=120)
    assert b"Traceback" not in proc.stderr and proc.returncode in (0, 1), proc.stderr
    from test_report_helpers import take_output
    return take_output(out).decode() + proc.stdout.decode() + proc.stderr.decode()


@pytest.fixture(scope="module")
def outputs(capture) -> dict:
    return {fmt: report(capture, "--format", fmt) for fmt in FORMATS}


# The places whose text a report shows (request line, headers); the others live in
# message texts, which the renderers do not print today but the model keeps.
SHOWN_IN_REPORTS = {"Authorization Token", "Sec-WebSocket-Protocol bearer JWT",
                    "callback user:pass@ password", "callback token query parameter"}


def model_text(capture: Path, redact: bool) -> str:
    """Everything the session model holds (JSON, every kept message, findings, diagnosis)."""
    from analyzer.pipeline import analyze_capture
    from analyzer.redact import redact_session
    rep = analyze_capture(str(capture), Options())
    parts = []
    for s in rep.sessions:
        if redact:
            redact_session(s)
        parts.append(json.dumps(s.to_json(), default=str))
        parts += [m.text or "" for m in s.messages]
    return "\n".join(parts)


def test_every_place_reaches_the_model_and_the_reports_unredacted(capture):
    # Controls, so the tests below can fail: unredacted, every place is in the model, and
    # the request-line/header places are in every report format.
    assert set(leaked(model_text(capture, redact=False))) == set(PLACES)
    for fmt in FORMATS:
        assert set(leaked(report(capture, "--format", fmt, "--show-secrets"))) == SHOWN_IN_REPORTS


@pytest.fixture(scope="module")
def redacted_model(capture) -> str:
    return model_text(capture, redact=True)


@pytest.mark.parametrize("place", sorted(PLACES))
def test_place_redacted_in_the_model(redacted_model, place):
    assert place not in leaked(redacted_model)


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("fmt", FORMATS)
def test_place_redacted_in_format(outputs, fmt, place):
    assert place not in leaked(outputs[fmt])


def test_live_dashboard(capture):
    options = Options()
    analyzer = CaptureAnalyzer(options)
    state = LiveState(10.0, analyzer.sessions, on_conclude=_redactor(False, None))
    state.install(options)
    packets, _ = file_packets(capture)
    for p in packets:
        analyzer.packet(*p)
    analyzer.finish()
    console = Console(record=True, width=250, file=io.StringIO(), color_system=None)
    views = state.views(packets[-1][1])
    console.print(render(Status(interface="lo", bpf="tcp"), state, views))
    text = console.export_text()
    assert "listen" in text and "agent" in text
    assert leaked(text) == {}


def test_audio_export_names_and_notes(capture, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "analyzer.cli", "audio", str(capture), "-o",
                           str(tmp_path) + "/"], capture_output=True, env=env, cwd=ROOT, timeout=120)
    text = proc.stdout.decode() + proc.stderr.decode() + " ".join(os.listdir(tmp_path))
    assert proc.returncode == 0 and "places.session1.wav" in text, text
    assert leaked(text) == {}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_place_in_free_text(place):
    # The same secrets in text that is not parsed as JSON (a log line, a cut preview).
    secret = PLACES[place]
    samples = {
        "callback user:pass@ password": f"callback https://cbuser:{secret}@hooks.example.com/x",
        "function URL user:pass@ password": f"https://fnuser:{secret}@fn.example.com/x",
        "callback token query parameter": f"/dg?callback=https%3A%2F%2Fh%2Fcb%3Ftoken%3D{secret}",
        "think endpoint.url api_key": f"https://llm.example.com/v1?api_key={secret}",
        "Sec-WebSocket-Protocol bearer JWT": f"Sec-WebSocket-Protocol: chat, bearer, {secret}",
        "Authorization Token": f"Authorization: Token {secret}",
    }
    if place in samples:
        assert leaked(redact_text(samples[place])) == {}
    else:
        # JSON places: the whole Settings / UpdateSpeak / Configure text, cleaned as a message.
        text = json.dumps({"settings": settings(), "update": {"endpoint": {"headers": {
            "x-api-key": PLACES["UpdateSpeak endpoint.headers x-api-key"]}}},
            "configure": {"api_key": PLACES["SchemaError message echo"]}})
        assert place not in leaked(redact_json_text(text))
