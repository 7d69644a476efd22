"""No secret and no audio byte in any report, in any output format.

Every format of `dgcap report` (FORMATS, so formats added later are covered) is run over every
sample capture (the TLS ones with their key logs), the public corpus when it is present, and
a crafted capture that authenticates with a Sec-WebSocket-Protocol token.  Secrets: the test
API key, the bearer JWT in the corpus' wstunnel-http.pcap, the subprotocol token and every
secret of the key logs (files and the one embedded in a pcapng).  No 12-character piece of
any of them may appear (a mask shows the last 4).  A control run with --show-secrets proves
the secrets really are in the inputs.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.capture import open_capture
from analyzer.commands.report import FORMATS
from analyzer.pipeline import Options, analyze_capture

from test_limits import PcapWriter, Tcp, upgrade, ws_frame

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
CORPUS = ROOT.parent / "shared" / "corpus" / "public"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus/public")
API_KEY = "dgtest_0123456789abcdef0123456789abcdef"
# What captures/record.py sends in agent_normal's Settings (provider credentials in every
# place the protocol reference lists) and in dg_callback_credentials' callback URL.
sys.path.insert(0, str(CAPTURES))
from record import CALLBACK_PASSWORD, CALLBACK_TOKEN, PROVIDER_SECRETS  # noqa: E402

CALLBACK_SECRETS = {"callback password": CALLBACK_PASSWORD, "callback token": CALLBACK_TOKEN}
SUBPROTOCOL_TOKEN = "dgsub_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
WINDOW = 12


def captures() -> list[Path]:
    return sorted(p for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))


def corpus_captures() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.suffix in (".pcap", ".pcapng"))


def keylog_secrets() -> list[str]:
    """The secret column of every key log line, files and embedded."""
    out = []
    for keys in sorted(CAPTURES.glob("*.keys")):
        out += [line.split()[2] for line in keys.read_text().splitlines() if len(line.split()) == 3]
    with open_capture(CAPTURES / "tls13_embedded_secrets.pcapng") as cap:
        for _ in cap.packets():
            pass
        embedded = "".join(blob.decode() for _, blob in cap.secrets)
    out += [line.split()[2] for line in embedded.splitlines() if len(line.split()) == 3]
    assert len(out) >= 20 and all(re.fullmatch(r"[0-9a-f]{64,96}", s) for s in out)
    return out


def corpus_jwt() -> str | None:
    path = CORPUS / "zeek" / "wstunnel-http.pcap"
    if not path.exists():
        return None
    match = re.search(rb"authorization\.bearer\.(eyJ[A-Za-z0-9_\-.]+)", path.read_bytes())
    assert match, "the JWT of wstunnel-http.pcap is gone"
    return match.group(1).decode()


def windows(secret: str) -> set[str]:
    return {secret[i:i + WINDOW] for i in range(len(secret) - WINDOW + 1)}


def write_subprotocol_capture(path: Path) -> None:
    """A Deepgram-style session that authenticates with `Sec-WebSocket-Protocol: token, KEY`
    and echoes the key in an error text (the server quoting what it got)."""
    w = PcapWriter(path)
    tcp = Tcp(w)
    upgrade(tcp, request_headers=(("Sec-WebSocket-Protocol", f"token, {SUBPROTOCOL_TOKEN}"),),
            response_headers=(("Sec-WebSocket-Protocol", "token"),))
    tcp.send(0, ws_frame(1, b'{"type": "KeepAlive"}', True))
    tcp.send(1, ws_frame(1, json.dumps({"type": "Error", "description": f"bad key {SUBPROTOCOL_TOKEN}"}).encode(),
                         False))
    tcp.send(1, ws_frame(8, b"\x03\xf0token " + SUBPROTOCOL_TOKEN.encode(), False))
    tcp.send(0, ws_frame(8, b"\x03\xe8", True))
    tcp.close()
    w.close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("secrets")
    crafted = tmp / "subprotocol_token.pcap"
    write_subprotocol_capture(crafted)
    keylog = tmp / "all.keys"
    keylog.write_text("".join(k.read_text() for k in sorted(CAPTURES.glob("*.keys"))))
    paths = captures() + corpus_captures() + [crafted]
    secrets = {"api key": API_KEY, "subprotocol token": SUBPROTOCOL_TOKEN, **PROVIDER_SECRETS,
               **CALLBACK_SECRETS}
    jwt = corpus_jwt()
    if jwt:
        secrets["corpus JWT"] = jwt
    for i, s in enumerate(keylog_secrets()):
        secrets[f"key log secret {i}"] = s
    return {"paths": paths, "keylog": keylog, "secrets": secrets, "crafted": crafted, "tmp": tmp}


def run_report(args, tmp: Path) -> bytes:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="160")
    env.pop("SSLKEYLOGFILE", None)
    out = tmp / "report.out"
    proc = subprocess.run([sys.executable, "-m", "analyzer.cli", "report", "-q", "--transcript",
                           "-o", str(out), *map(str, args)],
                          capture_output=True, env=env, cwd=ROOT, timeout=300)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    assert proc.returncode in (0, 1), proc.stderr.decode(errors="replace")
    from test_report_helpers import take_output
    return take_output(out) + proc.stdout + proc.stderr


def leaks(output: bytes, secrets: dict) -> list[str]:
    text = output.decode("utf-8", "replace")
    found = []
    for name, secret in secrets.items():
        hit = next((w for w in sorted(windows(secret)) if w in text), None)
        if hit is not None:
            found.append(f"{name}: {hit!r}")
    return found


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_secret_in_any_format(inputs, fmt):
    output = run_report(["--format", fmt, "--keylog", inputs["keylog"], *inputs["paths"]], inputs["tmp"])
    assert len(output) > 10_000
    # The TLS captures really were decrypted: their sessions' transcripts are in the report.
    assert output.count(b"tls-decrypted") >= 6 or fmt == "rich" and output.count(b"tls-decrypted") >= 1
    assert leaks(output, inputs["secrets"]) == []


def test_the_secrets_are_in_the_inputs(inputs):
    # Control: with --show-secrets the same run shows them, so the test above can fail.
    shown = {k: v for k, v in inputs["secrets"].items()
             if not k.startswith("key log") and k not in PROVIDER_SECRETS}
    output = run_report(["--format", "json", "--show-secrets", "--keylog", inputs["keylog"],
                         CAPTURES / "dg_success.pcap", CAPTURES / "dg_callback_credentials.pcap",
                         inputs["crafted"],
                         *([CORPUS / "zeek" / "wstunnel-http.pcap"] if corpus_jwt() else [])], inputs["tmp"])
    assert len(leaks(output, shown)) == len(shown)
    # The provider keys travel inside the Settings message, which no report prints; they
    # are in the unredacted session model, so a renderer that printed them would fail the
    # test above (tests/test_redact_places.py checks the redacted model too).
    (session,) = analyze_capture(str(CAPTURES / "agent_normal.pcap"), Options()).sessions
    texts = "".join(m.text or "" for m in session.messages)
    assert all(secret in texts for secret in PROVIDER_SECRETS.values())


def test_key_log_file_is_never_echoed(inputs, tmp_path):
    # A key log that matches nothing, or is not a key log at all, is not quoted either.
    bogus = tmp_path / "bogus.keys"
    secret = "f" * 24 + "0123456789abcdef" * 3
    bogus.write_text(f"CLIENT_RANDOM {'ab' * 32} {secret}\nnot a key log line {secret}\n")
    for fmt in FORMATS:
        output = run_report(["--format", fmt, "--keylog", bogus, CAPTURES / "tls13_aes128_success.pcap"],
                            inputs["tmp"])
        assert leaks(output, {"bogus": secret}) == [], fmt


def audio_payloads() -> list[bytes]:
    chunks: dict = {}

    def hook(session, frame, chunk):
        if not isinstance(chunk, int):
            chunks.setdefault((frame.first_frame, frame.start_time), bytearray()).extend(chunk)
    analyze_capture(str(CAPTURES / "dg_success.pcap"), Options(binary_hook=hook))
    return [bytes(c) for c in chunks.values()]


def byte_forms(run: bytes) -> dict[str, bytes]:
    return {"raw": run, "hex": run.hex().encode(), "HEX": run.hex().upper().encode(),
            "hex spaced": run.hex(" ").encode(), "base64": base64.b64encode(run)[:24],
            "repr": repr(run)[2:-1].encode(), "latin-1": run.decode("latin-1").encode("utf-8")}


@pytest.mark.parametrize("fmt", FORMATS)
def test_audio_bytes_are_not_in_reports(inputs, fmt):
    payloads = audio_payloads()
    assert len(payloads) == 30 and all(len(p) == 3200 for p in payloads)
    # A run from the middle of the fifth chunk, and the first chunk past the 16 bytes whose
    # hex the report shows on purpose (first_payload.head: what the audio format sniffer saw).
    runs = {"chunk 5": payloads[4][1000:1024], "chunk 1 after its head": payloads[0][16:40]}
    for run in runs.values():
        assert len(set(run)) > 8  # distinctive: not a run of one byte
    output = run_report(["--format", fmt, CAPTURES / "dg_success.pcap", CAPTURES / "dg_wav_container.pcap"],
                        inputs["tmp"])
    found = [f"{name} as {form}" for name, run in runs.items()
             for form, encoded in byte_forms(run).items() if encoded in output]
    assert found == []
    if fmt == "json":
        doc = json.loads(output[:output.rindex(b"}") + 1])
        heads = [s["audio"]["first_payload"]["head"] for c in doc["captures"] for s in c["sessions"]]
        assert heads[0] == payloads[0][:16].hex()
