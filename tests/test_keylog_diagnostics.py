"""A wrong key log is reported as what it is, with the file's name (not as "no key log")."""
from __future__ import annotations

from pathlib import Path

from analyzer.pipeline import Options, analyze_capture
from test_report_helpers import REPO, run_cli

CAPTURE = str(REPO / "captures" / "tls13_net0001.pcap")
KEYS = REPO / "captures" / "tls13_net0001.keys"


def _findings(keylog: Path):
    cap = analyze_capture(CAPTURE, Options(keylog=str(keylog)))
    return cap, [(f.id, f.severity, f.message) for f in cap.findings]


def test_garbage_key_log_holds_no_usable_secret(tmp_path):
    keys = tmp_path / "keys.log"
    keys.write_text("garbage line\nCLIENT_RANDOM nothex nothex\n")
    cap, found = _findings(keys)
    assert found == [("keylog-empty", "warning",
                      "keys.log holds 0 usable secrets (2 lines not in the NSS key log format "
                      "'LABEL <client random> <secret>'): no TLS session can be decrypted with it.")]
    r = run_cli("report", CAPTURE, "--keylog", str(keys), "--width", "200")
    assert "keys.log holds 0 usable secrets" in r.stdout and "no key log was given" not in r.stdout


def test_another_captures_key_log_has_no_entry_for_this_client_random():
    other = REPO / "captures" / "tls12_aes256gcm_success.keys"
    cap, found = _findings(other)
    assert found == [("keylog-no-match", "warning",
                      "tls12_aes256gcm_success.keys has no entry for the client random of any of the 1 TLS "
                      "session(s) in this capture (it holds secrets for 1 other connection(s)): it was "
                      "recorded for another run; record this client's run with SSLKEYLOGFILE.")]


def test_wrong_secret_is_a_bad_record_mac(tmp_path):
    keys = tmp_path / "stale.keys"
    lines = []
    for line in KEYS.read_text().splitlines():
        if len(line.split()) != 3:
            continue
        label, random, secret = line.split()
        lines.append(f"{label} {random} {'00' * (len(secret) // 2)}")
    keys.write_text("\n".join(lines) + "\n")
    cap, _ = _findings(keys)
    (s,) = cap.sessions
    mac = [f for f in s.findings if f.id == "tls-bad-record-mac"]
    assert [f.message for f in mac] == [
        "Wrong secret (bad record MAC): the secrets in stale.keys for this session's client random do not "
        "decrypt its records (wrong or stale keys); decryption stopped (from the client and the server): "
        "2 times, frames 6, 8."]
