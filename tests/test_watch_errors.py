"""`dgcap watch` when it cannot capture: one line that says what is needed, exit 2.

The permission path runs for real where it can (as root without the capture
capabilities, via setpriv's bounding set; as the unprivileged `nobody` when that user
can run this checkout) and is also simulated with a stand-in dumpcap that prints the
real dumpcap 4.0's error text.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DUMPCAP = shutil.which("dumpcap")

PERMISSION_LINE = (
    "dgcap: error: no permission to capture on lo: run as root, or grant dumpcap CAP_NET_RAW and "
    "CAP_NET_ADMIN (sudo setcap cap_net_raw,cap_net_admin=eip {dumpcap}), or join the 'wireshark' "
    "group where dumpcap is installed for it (sudo usermod -aG wireshark $USER, then log in again)\n")

# What dumpcap 4.0 prints (stderr) without capture permission, exit status 1.
DUMPCAP_PERMISSION_TEXT = """Capturing on 'Loopback: lo'
dumpcap: You do not have permission to capture on device "lo".
(socket: Operation not permitted)
Please check to make sure you have sufficient permissions.

On Debian and Debian derivatives such as Ubuntu, if you have installed Wireshark from a package, try running

    sudo dpkg-reconfigure wireshark-common

selecting "<Yes>" in response to the question

    Should non-superusers be able to capture packets?

adding yourself to the "wireshark" group by running

    sudo usermod -a -G wireshark {your username}

and then logging out and logging back in again.
"""


def env(**extra) -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop("SSLKEYLOGFILE", None)
    e.update(extra)
    return e


def watch(*args: str, prefix=(), **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "analyzer.cli", "watch", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, **kw)


def fake_dumpcap(folder: Path, stderr_text: str, status: int) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "msg").write_text(stderr_text)
    path = folder / "dumpcap"
    path.write_text(f"#!/bin/sh\ncat '{folder / 'msg'}' >&2\nexit {status}\n")
    path.chmod(0o755)
    return path


def test_permission_error_simulated(tmp_path):
    fake = fake_dumpcap(tmp_path / "bin", DUMPCAP_PERMISSION_TEXT, 1)
    res = watch("-i", "lo", "--write", str(tmp_path / "x.pcapng"),
                env=env(PATH=f"{fake.parent}{os.pathsep}/usr/bin:/bin"))
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == PERMISSION_LINE.format(dumpcap=fake)
    assert not (tmp_path / "x.pcapng").exists()  # nothing captured, no empty file left


def _can_drop_capabilities() -> bool:
    if DUMPCAP is None or os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    res = subprocess.run(["setpriv", "--bounding-set=-net_raw,-net_admin", "true"], capture_output=True)
    return res.returncode == 0


@pytest.mark.skipif(not _can_drop_capabilities(),
                    reason="needs dumpcap, root and setpriv allowed to shrink the bounding set")
def test_permission_error_root_without_capture_capabilities():
    # Root, but CAP_NET_RAW/CAP_NET_ADMIN removed from the bounding set: dumpcap cannot capture.
    res = watch("-i", "lo", "--duration", "1", prefix=["setpriv", "--bounding-set=-net_raw,-net_admin"],
                env=env())
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == PERMISSION_LINE.format(dumpcap=DUMPCAP)


def _nobody_can_run_dgcap() -> bool:
    if DUMPCAP is None or os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    try:
        res = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                              sys.executable, "-c", "import analyzer.commands.watch, analyzer.live.capture"],
                             capture_output=True, cwd=ROOT, env=env(), timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


@pytest.mark.skipif(not _nobody_can_run_dgcap(),
                    reason="the unprivileged user cannot run this Python/checkout (or no root/setpriv)")
def test_permission_error_unprivileged_user(tmp_path):
    res = watch("-i", "lo", "--duration", "1",
                prefix=["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"], env=env())
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == PERMISSION_LINE.format(dumpcap=DUMPCAP)


def test_dumpcap_missing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = watch("-i", "lo", env=env(PATH=str(empty)))
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == (
        "dgcap: error: dumpcap not found: dgcap watch captures with Wireshark's dumpcap; install it "
        "(Debian/Ubuntu: sudo apt-get install tshark; Fedora: sudo dnf install wireshark-cli; macOS: "
        "brew install wireshark) or put it on PATH\n")


@pytest.mark.skipif(DUMPCAP is None or os.geteuid() != 0, reason="needs dumpcap and root")
def test_no_such_interface():
    res = watch("-i", "dgcapnosuch0", "--duration", "1", env=env())
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == "dgcap: error: no interface named 'dgcapnosuch0' (list them with: dumpcap -D)\n"


@pytest.mark.skipif(DUMPCAP is None or os.geteuid() != 0, reason="needs dumpcap and root")
def test_invalid_capture_filter():
    res = watch("-i", "lo", "--filter", "tcp port", "--duration", "1", env=env())
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == ("dgcap: error: invalid capture filter 'tcp port': can't parse filter "
                          "expression: syntax error\n")


@pytest.mark.parametrize("args, message", [
    (["--write", "/nonexistent-dir/x.pcapng"], "/nonexistent-dir/x.pcapng: folder /nonexistent-dir does not exist"),
    # Unwritable: found before the capture runs for its whole --duration (issue 16).
    (["--write", "/proc/x.pcapng", "--duration", "30"],
     "/proc/x.pcapng: cannot write the capture there: No such file or directory"),
    (["--write", "/tmp", "--duration", "30"], "/tmp: is a folder; give a file name such as capture.pcapng"),
    (["--gap-threshold", "0"], "--gap-threshold must be a positive number of seconds"),
    (["--duration", "-1"], "--duration must be a positive number of seconds"),
    (["--ring-files", "0"], "--ring-files must be at least 1"),
])
def test_bad_arguments(args, message, tmp_path):
    # Checked before dumpcap runs: a stand-in that would fail loudly proves it is never started.
    fake = fake_dumpcap(tmp_path / "bin", "should not run\n", 3)
    res = watch("-i", "lo", *args, env=env(PATH=f"{fake.parent}{os.pathsep}/usr/bin:/bin"))
    assert (res.returncode, res.stdout, res.stderr) == (2, "", f"dgcap: error: {message}\n")


def test_the_write_check_leaves_no_file_behind_and_changes_none(tmp_path):
    from analyzer.commands.watch import _unwritable

    new = tmp_path / "new.pcapng"
    assert _unwritable(str(new)) is None
    assert list(tmp_path.iterdir()) == []  # the writer creates it at the first packet
    old = tmp_path / "old.pcapng"
    old.write_bytes(b"kept")
    assert _unwritable(str(old)) is None
    assert old.read_bytes() == b"kept"
    assert _unwritable("/sys/x.pcapng") == "/sys/x.pcapng: cannot write the capture there: Permission denied"
