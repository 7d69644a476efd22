"""End-to-end behaviour of the pipeline on real captures, beyond the per-capture expectations:
connections picked up mid-stream, TLS twins of plain-text scenarios, keys for some sessions only.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.capture import open_capture
from tests.support.capture_synth import pcap
from analyzer.model import CLIENT, SERVER
from analyzer.pipeline import Options, analyze_capture

CAPTURES = Path(__file__).resolve().parents[1] / "captures"


def _records(path: Path):
    with open_capture(str(path)) as cap:
        linktype = cap.interfaces[0][0]
        return linktype, [(ts, bytes(data)) for _, ts, _, data in cap.packets()]


def _write(path: Path, linktype: int, records) -> None:
    path.write_bytes(pcap([(int(ts), round((ts - int(ts)) * 1e6), data) for ts, data in records],
                          linktype=linktype))


def _trace(path: Path, **kw):
    frames = []
    opts = Options(frame_hook=lambda s, d, f: frames.append((d, f.opcode, f.length, f.first_frame, f.frame)), **kw)
    return analyze_capture(str(path), opts), frames


def test_connection_picked_up_mid_stream(tmp_path):
    """Cut dg_success.pcap after the 101 and part of the audio: the frame stream is still found."""
    full, full_frames = _trace(CAPTURES / "dg_success.pcap")
    (s,) = full.sessions
    cut = s.handshake.response_frame + 12  # well into the audio, likely mid-frame
    linktype, records = _records(CAPTURES / "dg_success.pcap")
    cut_file = tmp_path / "midstream.pcap"
    _write(cut_file, linktype, records[cut:])

    report, frames = _trace(cut_file)
    (m,) = report.sessions
    assert m.midstream and m.websocket and m.handshake.request_frame is None
    assert (m.client, m.server) == (s.client, s.server)
    assert "midstream" in [f.id for f in m.findings]
    # Every frame that starts after the cut is found, in both directions, renumbered by `cut`.
    expected = [(d, op, ln, first - cut, last - cut) for d, op, ln, first, last in full_frames if first > cut]
    got = [f for f in frames if f[3] > 0]
    assert got[-len(expected):] == expected
    assert m.close.client.code == 1000 and m.close.server.code == 1000
    assert m.endpoint == "listen"


TWINS = [("dg_success", "tls13_aes128_success"), ("dg_success", "tls13_chacha20_success"),
         ("dg_success", "tls12_aes256gcm_success"), ("dg_success", "tls12_chacha20_success"),
         ("dg_success", "tls13_embedded_secrets"), ("dg_net0001", "tls13_net0001")]


def _keys(name: str):
    keys = CAPTURES / f"{name}.keys"
    return str(keys) if keys.exists() else None


def _tls_file(name: str) -> Path:
    return next(CAPTURES.glob(f"{name}.pcap*"))


@pytest.mark.parametrize("plain,tls", TWINS, ids=[t for _, t in TWINS])
def test_decrypted_session_matches_its_plain_text_twin(plain, tls):
    (p,) = analyze_capture(str(CAPTURES / f"{plain}.pcap")).sessions
    (t,) = analyze_capture(str(_tls_file(tls)), Options(keylog=_keys(tls))).sessions
    assert t.transport == "tls-decrypted" and p.transport == "tcp"
    assert sorted(f.id for f in t.findings) == sorted(f.id for f in p.findings)
    for d in (CLIENT, SERVER):
        a, b = p.frames[d].to_json(), t.frames[d].to_json()
        for key in ("text", "binary", "empty_binary", "continuation", "ping", "pong", "close", "payload_bytes"):
            assert a[key] == b[key], (d, key)
    assert (t.close.client.code, t.close.server.code) == (p.close.client.code, p.close.server.code)
    assert (t.close.client.reason, t.close.server.reason) == (p.close.client.reason, p.close.server.reason)
    assert [g.kind for g in t.gaps] == [g.kind for g in p.gaps]
    assert t.handshake.status == p.handshake.status == 101
    assert t.endpoint == p.endpoint
    # Frame numbers point at packets of the TLS capture that carried the records.
    last = t.frames[CLIENT].last_frame
    assert t.close.client.frame == last


def test_tls_without_keys_still_finds_the_silence_before_net0001():
    # A 1-second stream to "localhost" is a session without keys only when that server is
    # named as a (self-hosted) Deepgram server: else it is one of the other connections.
    assert analyze_capture(str(CAPTURES / "tls13_net0001.pcap")).sessions == []
    report = analyze_capture(str(CAPTURES / "tls13_net0001.pcap"), Options(server_names=("localhost",)))
    (s,) = report.sessions
    assert s.transport == "tls"
    tls = s.to_json()["tls"]
    assert tls["sni"] == "localhost" and tls["version"] == "TLS 1.3"
    assert tls["cipher_suite"] == "TLS_AES_256_GCM_SHA384"
    assert tls["decryption"] == "no-keys"
    ids = [f.id for f in s.findings]
    assert "client-gap" in ids and "tls-no-keys" in ids
    (gap,) = s.gaps
    # The decrypted twin shows the client's last audio frame at the same packet.
    (d,) = analyze_capture(str(CAPTURES / "tls13_net0001.pcap"),
                           Options(keylog=_keys("tls13_net0001"))).sessions
    assert gap.after_frame == d.gaps[0].after_frame
    assert gap.seconds > 10.0 and gap.kind == "any"
    assert s.close.tcp_end == "fin"
    assert tls["activity"]["client"]["app_records"] > 10


def test_keys_for_one_session_but_not_the_other(tmp_path):
    lt1, a = _records(CAPTURES / "tls13_aes128_success.pcap")
    lt2, b = _records(CAPTURES / "tls12_chacha20_success.pcap")
    assert lt1 == lt2
    merged = tmp_path / "two.pcap"
    _write(merged, lt1, sorted(a + b, key=lambda r: r[0]))
    report = analyze_capture(str(merged), Options(keylog=_keys("tls13_aes128_success"),
                                                  server_names=("localhost",)))
    by_transport = sorted(s.transport for s in report.sessions)
    assert by_transport == ["tls", "tls-decrypted"]
    plain = [s for s in report.sessions if s.transport == "tls"][0]
    assert plain.to_json()["tls"]["cipher_suite"] == "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
    assert "tls-no-keys" in [f.id for f in plain.findings]


def test_wrong_keys_are_reported_not_crashed(tmp_path):
    keys = Path(_keys("tls13_aes128_success")).read_text().splitlines()
    broken = []
    for line in keys:
        if line.startswith("#") or not line.strip():
            continue
        label, random, secret = line.split()
        flipped = ("0" if secret[0] != "0" else "1") + secret[1:]
        broken.append(f"{label} {random} {flipped}")
    bad = tmp_path / "bad.keys"
    bad.write_text("\n".join(broken) + "\n")
    (s,) = analyze_capture(str(CAPTURES / "tls13_aes128_success.pcap"), Options(keylog=str(bad))).sessions
    assert s.transport == "tls"
    assert "tls-bad-record-mac" in [f.id for f in s.findings]
    assert s.frames[CLIENT].total == 0


def _dgcap(*args):
    return subprocess.run([sys.executable, "-m", "analyzer.cli", *args], capture_output=True, text=True)


def test_cli_exit_codes_and_errors(tmp_path):
    ok = _dgcap("report", str(CAPTURES / "dg_success.pcap"), "--format", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["schema"] == "dgcap.report/1"
    failed = _dgcap("report", str(CAPTURES / "dg_401.pcap"), "--format", "json")
    assert failed.returncode == 1
    missing = _dgcap("report", str(tmp_path / "nope.pcap"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr
    wav = tmp_path / "audio.wav"
    wav.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(32))
    notcap = _dgcap("report", str(wav))
    assert notcap.returncode == 2 and "Traceback" not in notcap.stderr and notcap.stderr.startswith("dgcap: error:")
    usage = _dgcap("report", "--gap-threshold", "-3", str(CAPTURES / "dg_success.pcap"))
    assert usage.returncode == 2


def test_cli_folder_output_file_and_threshold(tmp_path):
    from test_report_helpers import sample_folder
    out = tmp_path / "r.json"
    r = _dgcap("report", str(sample_folder(tmp_path)), "--format", "json", "-o", str(out),
               "--gap-threshold", "6")
    assert r.returncode == 1 and r.stdout == ""
    doc = json.loads(out.read_text())
    names = sorted(Path(c["path"]).name for c in doc["captures"])
    assert names == sorted(p.name for p in CAPTURES.glob("*") if p.suffix in (".pcap", ".pcapng"))
    assert doc["options"]["gap_threshold"] == 6.0
    silence = next(c for c in doc["captures"] if c["path"].endswith("dg_silence_7s.pcap"))
    (s,) = silence["sessions"]
    # At 6 s, the 7 s pause is a gap (it is not at the default 10 s: see its expectations).
    assert [g["kind"] for g in s["gaps"]] == ["any", "audio"]
    assert all(6.0 < g["seconds"] < 10.0 for g in s["gaps"])
    assert not list(tmp_path.glob(".dgcap-*"))


def test_limit_flags_reach_the_pipeline_and_their_hits_are_findings():
    r = _dgcap("report", str(CAPTURES / "dg_success.pcap"), "--format", "json", "--max-message", "100")
    (s,) = json.loads(r.stdout)["captures"][0]["sessions"]
    (f,) = [f for f in s["findings"] if f["id"] == "message-too-big"]
    # The server's text messages over 100 bytes are among the cut ones; the client's short
    # text messages (KeepAlive, Finalize, CloseStream) are not.
    messages = analyze_capture(str(CAPTURES / "dg_success.pcap")).sessions[0].messages
    big = {m.frame for m in messages if m.size > 100}
    small = {m.frame for m in messages if m.size <= 100}
    assert big and big <= set(f["frames"]) | set(range(f["frames"][-1] + 1, 10**6))
    assert not small & set(f["frames"])
    r = _dgcap("report", str(CAPTURES / "dg_deflate.pcap"), "--format", "json", "--max-inflate", "64")
    (s,) = json.loads(r.stdout)["captures"][0]["sessions"]
    assert "inflate-limit" in [f["id"] for f in s["findings"]]
    assert _dgcap("report", str(CAPTURES / "dg_success.pcap"), "--max-connections", "-1").returncode == 2
