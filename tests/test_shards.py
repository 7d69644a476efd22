"""One capture split over worker processes (analyzer/shards.py, `dgcap report --shards N`):
the report is byte-identical to the single-process one, and the stream numbers are tshark's."""
from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import analyzer.commands.report as report_cmd
from analyzer.commands.report import analyze_files, render
from analyzer.dns import DnsNames
from analyzer.model import Report
from analyzer.pipeline import Options
from analyzer.shards import (IDLE_SAMPLE_MAX_AGE, IDLE_SAMPLE_SECONDS, SHARD_MIN_BYTES, IdleCpus, ShardWork,
                             proc_stat_ticks, shard_count, shard_of)
from test_report_helpers import CAPTURES, REPO, run_cli
from test_tcp_wireshark import Collector, assert_same_streams, soup, tcp_frame, write_pcap

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")

RECORDED = sorted([*CAPTURES.glob("*.pcap*"), *CAPTURES.glob("lab/**/*.pcap*")])
SHARDS = 3
CHECKED = 190  # tcp.stream numbers of the captures with several connections


def keylog_of(path: Path):
    keys = path.with_name(path.name.split(".")[0] + ".keys")
    return str(keys) if keys.exists() else None


@contextlib.contextmanager
def whole_captures():
    """The captures analysed in one process (whole) by analyze_files, in the parent: the
    captures that were not split, or were analysed again after their shards."""
    calls = []
    real_task = report_cmd._capture_task
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_cmd, "_capture_task", lambda p, *a, **k: calls.append(p) or real_task(p, *a, **k))
        yield calls


def analyse_recorded(shards: int, list_all: bool = False):
    """{path: CaptureReport} of every recorded capture (TLS ones with their key log), and the
    captures analysed in one process although shards were asked for."""
    groups: dict = {}
    for path in RECORDED:
        groups.setdefault(keylog_of(path), []).append(str(path))
    out = {}
    with whole_captures() as fallbacks:
        for keylog, files in groups.items():
            captures, _ = analyze_files(files, Options(keylog=keylog, list_all=list_all), False, shards=shards)
            out.update(zip(files, captures))
    return out, fallbacks if shards > 1 else []


@pytest.fixture(scope="module")
def recorded_reports():
    single, _ = analyse_recorded(1)
    sharded, fallbacks = analyse_recorded(SHARDS)
    return single, sharded, fallbacks


def rendered(capture, fmt: str, tmp_path: Path) -> bytes:
    out = tmp_path / f"report.{fmt}"
    args = SimpleNamespace(format=fmt, output=str(out), transcript=True, session_numbers=(), errors_only=False,
                           summary_only=False, width=None)
    render(Report(captures=[capture], options={"gap_threshold": 10.0, "secrets_redacted": True}), args)
    return out.read_bytes()


def test_every_recorded_capture_was_split_not_analysed_again(recorded_reports):
    single, sharded, fallbacks = recorded_reports
    assert len(RECORDED) == 62 and sorted(single) == sorted(sharded)
    assert fallbacks == []
    # Captures whose connections really are in several shards (most recorded ones have one).
    spread = [p for p, c in single.items() if len({shard_of(n, SHARDS) for n in range(c.connections.total)}) > 1]
    assert len(spread) == 10


@pytest.mark.parametrize("fmt", ["json", "markdown", "html", "rich"])
def test_sharded_report_is_byte_identical_on_every_recorded_capture(recorded_reports, fmt, tmp_path):
    single, sharded, _ = recorded_reports
    differ = [path for path in single if rendered(single[path], fmt, tmp_path) != rendered(sharded[path], fmt, tmp_path)]
    assert differ == []


def test_sharded_report_lists_every_other_connection_identically():
    single, _ = analyse_recorded(1, list_all=True)
    sharded, fallbacks = analyse_recorded(2, list_all=True)
    assert fallbacks == []
    assert [p for p in single if single[p].to_json() != sharded[p].to_json()] == []
    # NAT and span copies were folded across shards, proxy legs linked across them.
    nat = sharded[str(CAPTURES / "lab/egress_nat_both.pcap")]
    assert (nat.connections.total, nat.connections.copies, len(nat.sessions)) == (62, 31, 1)
    assert (nat.sessions[0].tcp_stream, nat.sessions[0].copy.tcp_stream) == (2, 3)
    assert (shard_of(2, 2), shard_of(3, 2)) == (0, 1)
    for name in ("proxy_both_legs", "proxy_ws_absolute_both_legs"):
        legs = sharded[str(CAPTURES / f"lab/{name}.pcap")].sessions[0].proxy.legs
        assert [(leg.leg, leg.tcp_stream, shard_of(leg.tcp_stream, 2)) for leg in legs] == [
            ("client-to-proxy", 0, 0), ("proxy-to-server", 1, 1)]


def tshark_first_frames(path: Path) -> dict:
    # Linux VXLAN's port 8472 is not VXLAN for tshark without a decode-as rule.
    out = subprocess.run([TSHARK, "-r", str(path), "-d", "udp.port==8472,vxlan", "-Y", "tcp", "-T", "fields",
                          "-e", "tcp.stream", "-e", "frame.number"], capture_output=True, text=True, check=True).stdout
    first: dict = {}
    for line in out.splitlines():
        stream, number = line.split("\t")
        first.setdefault(int(stream), int(number))
    return first


@needs_tshark
def test_sharded_stream_numbers_are_tsharks():
    sharded, _ = analyse_recorded(SHARDS, list_all=True)
    checked = 0
    for path, cap in sharded.items():
        if cap.connections.total == 1:
            assert [s.tcp_stream for s in cap.sessions] in ([0], [])
            continue
        first = tshark_first_frames(Path(path))
        ours = [(s.tcp_stream, s.start_frame) for s in cap.sessions]
        ours += [(s.copy.tcp_stream, s.copy.first_frame) for s in cap.sessions if s.copy is not None]
        ours += [(o.tcp_stream, o.first_frame) for o in cap.connections.listed]
        ours += [(leg.tcp_stream, leg.start_frame) for s in cap.sessions if s.proxy is not None
                 for leg in s.proxy.legs or () if leg.leg == "proxy-to-server"]
        # A copy of an `other` connection is only counted (connections.copies).
        folded = cap.connections.copies - sum(s.copy is not None for s in cap.sessions)
        assert set(ours) <= set(first.items()) and len(ours) + folded == len(first), path
        checked += len(first)
    assert checked == CHECKED


@needs_tshark
@pytest.mark.parametrize("seed", [1, 2])
def test_every_shard_numbers_the_packet_soup_like_tshark(tmp_path, seed):
    """Each worker keeps only tombstones of the other shards' connections: numbering holds."""
    path = tmp_path / f"soup{seed}.pcap"
    write_pcap(path, soup(seed))
    analysed = []
    for index in range(3):
        done = []
        work = ShardWork(index, 3)
        factory = work.factory(lambda conn, done=done: Collector(conn, done), SimpleNamespace(dns=DnsNames()))
        ours, _, tracker = assert_same_streams(path, factory=factory)
        analysed.append({c.conn.stream for c in done})
        assert tracker.stats["ignored_connections"] == work.declined
    assert not analysed[0] & analysed[1] and not analysed[1] & analysed[2]
    assert len(set.union(*analysed)) > 150


@pytest.mark.parametrize("tls", [False, True], ids=["mixed", "tls"])
def test_sharded_report_is_identical_on_a_synthesised_mix(tmp_path, tls):
    """bench/synth.py: concurrent Deepgram sessions among HTTP downloads, SSH, DNS and RTP
    (decrypted with a key log for `tls`)."""
    path = tmp_path / "mix.pcap"
    cmd = [sys.executable, str(REPO / "bench" / "synth.py"), str(path), "--size", "3M", "--sessions", "12"]
    subprocess.run(cmd + (["--tls", "--seed", "4"] if tls else ["--seed", "3"]), check=True, capture_output=True)
    options = Options(keylog=str(path) + ".keys" if tls else None, list_all=True)
    single, _ = analyze_files([str(path)], options, False)
    for shards in (2, 3):
        sharded, _ = analyze_files([str(path)], options, False, shards=shards)
        assert sharded[0].to_json() == single[0].to_json()
    assert (len(single[0].sessions), single[0].connections.total) == ((5, 9) if tls else (8, 12))
    assert {s.transport for s in single[0].sessions} == ({"tls-decrypted"} if tls else {"tcp"})


def test_gzip_capture_split_when_asked(tmp_path):
    path = tmp_path / "dg_multi.pcapng.gz"
    path.write_bytes(gzip.compress((CAPTURES / "dg_multi.pcapng").read_bytes()))
    single, _ = analyze_files([str(path)], Options(), False)
    sharded, fallbacks = analyse_counting_fallbacks(str(path), Options(), 2)
    assert fallbacks == [] and sharded.compressed
    assert sharded.to_json() == single[0].to_json()


# -- secrets masked in the workers ----------------------------------------------------

@contextlib.contextmanager
def redacted_in_parent():
    """Whether the parent masked the secrets of each merged capture (False: the workers did)."""
    calls = []
    real = report_cmd._analyze_one
    with pytest.MonkeyPatch.context() as mp:
        def spy(path, options, redact, engine, analyze_capture=None):
            if analyze_capture is not None:  # a merge
                calls.append(redact)
            return real(path, options, redact, engine, analyze_capture)
        mp.setattr(report_cmd, "_analyze_one", spy)
        yield calls


def test_every_recorded_capture_split_alone_is_redacted_in_its_workers_identically(recorded_reports, tmp_path):
    """One capture split over the pool: each worker masks its own sessions' secrets, unless a
    proxy's client leg is in the capture (legs are linked by Host and SNI before redaction)."""
    single, _, _ = recorded_reports
    in_parent, differ = [], []
    for path in RECORDED:
        with redacted_in_parent() as calls, whole_captures() as fallbacks:
            captures, _ = analyze_files([str(path)], Options(keylog=keylog_of(path)), False, shards=2)
        assert fallbacks == [] and len(calls) == 1, path
        if calls[0]:
            in_parent.append(path.name)
        if rendered(captures[0], "json", tmp_path) != rendered(single[str(path)], "json", tmp_path):
            differ.append(path.name)
    assert differ == []
    assert sorted(in_parent) == sorted(p.name for p in RECORDED if any(
        s.proxy is not None and not s.proxy.refused for s in single[str(p)].sessions)) and in_parent


@pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(), reason="fork only")
@pytest.mark.parametrize("other, ours, agreed", [
    ((1, 600, False), (0, 300, False), True),  # 900 characters kept of 1000: nothing dropped after
    ((1, 700, False), (0, 300, False), False),  # 1000: the budget runs out, the parent drops messages
    ((1, 10**9, False), (0, 10**9, False), None),  # no budget (limit 0)
    ((1, 0, True), (0, 0, False), False),  # a proxy client leg in the other shard
    (None, (0, 0, False), False),  # the other worker failed: it broke the barrier
])
def test_shard_sync_tells_every_worker_the_same(other, ours, agreed):
    import multiprocessing
    from analyzer.shards import ShardSync
    ctx = multiprocessing.get_context("fork")
    limit = 0 if agreed is None else 1000
    sync = ShardSync(ctx, 2)

    def worker():
        if other is None:
            sync.abort()
            os._exit(2)
        os._exit(int(sync.may_redact(*other, limit)))

    child = ctx.Process(target=worker)
    child.start()
    mine = sync.may_redact(*ours, limit)
    child.join(30)
    expected = True if agreed is None else agreed
    assert mine is expected
    assert child.exitcode == (2 if other is None else int(expected))


def test_secrets_shown_are_not_redacted_in_the_workers():
    path = str(CAPTURES / "dg_multi.pcapng")
    with redacted_in_parent() as calls:
        sharded, _ = analyze_files([path], Options(), True, shards=2)
    single, _ = analyze_files([path], Options(), True)
    assert calls == [False] and sharded[0].to_json() == single[0].to_json()


def test_redaction_waits_for_the_parent_when_the_text_budget_runs_out(tmp_path):
    path = tmp_path / "mix.pcap"
    subprocess.run([sys.executable, str(REPO / "bench" / "synth.py"), str(path), "--size", "3M", "--sessions", "12",
                    "--seed", "3"], check=True, capture_output=True)
    for limit, in_parent in ((3000, True), (20000, False), (0, False)):
        options = Options(max_kept_server_text=limit)
        single, _ = analyze_files([str(path)], options, False)
        with redacted_in_parent() as calls, whole_captures() as fallbacks:
            sharded, _ = analyze_files([str(path)], options, False, shards=2)
        assert (calls, fallbacks) == ([in_parent], []), limit
        assert sharded[0].to_json() == single[0].to_json()


# -- DNS over TCP answers a connection of another shard ----------------------------------

CLIENT, RESOLVER, SERVER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 53]), bytes([10, 0, 0, 9])


def dns_answer(name: str, address: bytes) -> bytes:
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    msg = struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0) + qname + struct.pack("!HH", 1, 1)
    msg += struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + address
    return struct.pack("!H", len(msg)) + msg


def connection(client_port: int, server: bytes, server_port: int, request: bytes, response: bytes) -> list:
    c, s = 1000, 5000
    frames = [tcp_frame(CLIENT, server, client_port, server_port, c, 0, 0x02),
              tcp_frame(server, CLIENT, server_port, client_port, s, c + 1, 0x12),
              tcp_frame(CLIENT, server, client_port, server_port, c + 1, s + 1, 0x10),
              tcp_frame(CLIENT, server, client_port, server_port, c + 1, s + 1, 0x18, request),
              tcp_frame(server, CLIENT, server_port, client_port, s + 1, c + 1 + len(request), 0x18, response)]
    c, s = c + 1 + len(request), s + 1 + len(response)
    frames += [tcp_frame(CLIENT, server, client_port, server_port, c, s, 0x11),
               tcp_frame(server, CLIENT, server_port, client_port, s, c + 1, 0x11),
               tcp_frame(CLIENT, server, client_port, server_port, c + 1, s + 1, 0x10)]
    return frames


def test_dns_over_tcp_names_the_server_of_a_connection_in_another_shard(tmp_path):
    path = tmp_path / "dns_tcp.pcap"
    write_pcap(path, connection(40000, RESOLVER, 53, b"\x00\x1equery", dns_answer("stt.example.test", SERVER))
               + connection(40001, SERVER, 7000, b"\x07" * 40, b"\x08" * 40))
    assert shard_of(0, 2) != shard_of(1, 2)
    single, _ = analyze_files([str(path)], Options(list_all=True), False)
    sharded, _ = analyze_files([str(path)], Options(list_all=True), False, shards=2)
    assert sharded[0].to_json() == single[0].to_json()
    assert [(o.tcp_stream, o.protocol, o.server_name) for o in sharded[0].connections.listed] == [
        (0, "dns", None), (1, "unknown", "stt.example.test")]


# -- what cannot be split exactly is analysed in one process -----------------------------

def analyse_counting_fallbacks(path: str, options, shards):
    with whole_captures() as calls:
        captures, _ = analyze_files([path], options, False, shards=shards)
    return captures[0], calls


@pytest.mark.parametrize("limit, dropped", [(1, 22), (3000, 18), (20000, None)])
def test_the_capture_text_budget_runs_out_where_one_process_runs_out(tmp_path, limit, dropped):
    """Options.max_kept_server_text is spent in arrival order over every connection: the
    parent drops what the shards kept after the point where one process ran out."""
    path = tmp_path / "mix.pcap"
    subprocess.run([sys.executable, str(REPO / "bench" / "synth.py"), str(path), "--size", "3M", "--sessions", "12",
                    "--seed", "3"], check=True, capture_output=True)
    options = Options(max_kept_server_text=limit)
    single, _ = analyze_files([str(path)], options, False)
    expected = single[0].to_json()
    assert expected["stats"].get("messages_not_kept") == (
        None if dropped is None else {"server_text_limit": limit, "messages": dropped})
    assert sum(s["messages_dropped"] for s in expected["sessions"]) == (dropped or 0)
    for shards in (2, 3):
        sharded, fallbacks = analyse_counting_fallbacks(str(path), options, shards)
        assert fallbacks == [] and sharded.to_json() == expected


@pytest.mark.parametrize("limit", ["max_connections", "session_cap"])
def test_a_capture_that_cannot_be_split_exactly_is_analysed_in_one_process(limit, monkeypatch):
    path = str(CAPTURES / "dg_multi.pcapng")
    # dg_multi: 3 connections, 3 sessions; 1,000 characters of server text run out in the
    # second; a session cap of 2 messages makes which ones a session keeps depend on it.
    options = Options(max_connections=2) if limit == "max_connections" else Options(max_kept_server_text=1000)
    if limit == "session_cap":
        assert analyse_counting_fallbacks(path, options, 2)[1] == []  # the budget alone: merged
        monkeypatch.setattr("analyzer.session.SESSION_KEPT_MESSAGES", 2)  # the workers are forked
    single, _ = analyze_files([path], options, False)
    sharded, fallbacks = analyse_counting_fallbacks(path, options, 2)
    assert fallbacks == [path]
    assert sharded.to_json() == single[0].to_json()


# -- when to split ---------------------------------------------------------------------

class FakeClock:
    """time.monotonic and time.sleep of an IdleCpus under test: sleeping moves the clock."""

    def __init__(self):
        self.now = 1000.0
        self.slept: list = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def sampler(*samples, own=(0, 0), clock=None, load=None):
    """An IdleCpus reading /proc/stat `samples` ((idle, total) ticks, or None) in turn, this
    process's CPU ticks `own` in turn, and the load average `load`."""
    reads, owns, clock = iter(samples), iter(own), clock or FakeClock()
    return IdleCpus(read=lambda: next(reads), own=lambda: next(owns), clock=clock, sleep=clock.sleep,
                    loadavg=(lambda: (load, 0.0, 0.0)) if load is not None else lambda: (_ for _ in ()).throw(OSError))


def idle_sampler(cpus: float, cores: int) -> IdleCpus:
    """A sampler measuring `cpus` idle CPUs of `cores` over 100 ticks of each."""
    return sampler((0, 0), (round(cpus * 100), cores * 100))


def test_idle_cpus_from_proc_stat():
    clock = FakeClock()
    # 2 CPUs, 20 ticks: 18 idle (idle + iowait) -> 1.8 idle CPUs; the second sample waits
    # until IDLE_SAMPLE_SECONDS have passed since the first.
    idle = IdleCpus(read=iter([(1000, 5000), (1018, 5020)]).__next__, own=iter([0, 0]).__next__,
                    clock=clock, sleep=clock.sleep)
    idle.start()
    clock.now += 0.03
    assert idle.cpus(2) == pytest.approx(1.8) and clock.slept == [pytest.approx(IDLE_SAMPLE_SECONDS - 0.03)]
    # Our own start-up's CPU counts as idle: 8 idle ticks + 10 of ours, of 20.
    clock = FakeClock()
    idle = IdleCpus(read=iter([(1000, 5000), (1008, 5020)]).__next__, own=iter([3.0, 13.0]).__next__,
                    clock=clock, sleep=clock.sleep)
    idle.start()
    clock.now += 0.4  # a start-up longer than the interval: no waiting
    assert idle.cpus(2) == pytest.approx(1.8) and clock.slept == []
    # Another process busy on one of 2 CPUs (9 idle ticks of 20); none idle; at most all.
    assert sampler((1000, 5000), (1009, 5020)).cpus(2) == pytest.approx(0.9)
    assert sampler((1000, 5000), (1000, 5020)).cpus(2) == 0.0
    assert sampler((1000, 5000), (1020, 5020), own=(0, 5)).cpus(2) == 2.0
    # Not started: both samples now, IDLE_SAMPLE_SECONDS apart; a stale first sample is taken again.
    clock = FakeClock()
    assert sampler((0, 0), (35, 40), clock=clock).cpus(4) == pytest.approx(3.5)
    clock = FakeClock()
    idle = IdleCpus(read=iter([(0, 0), (500, 1000), (510, 1020)]).__next__, own=iter([0, 0, 0]).__next__,
                    clock=clock, sleep=clock.sleep)
    idle.start()
    clock.now += IDLE_SAMPLE_MAX_AGE + 1
    assert idle.cpus(2) == pytest.approx(1.0) and clock.slept == [pytest.approx(IDLE_SAMPLE_SECONDS)]


def test_idle_cpus_without_proc_stat_is_the_load_average():
    assert sampler(None, load=0.7).cpus(2) == pytest.approx(1.3)
    assert sampler(None, load=3.5).cpus(2) == 0.0
    assert sampler(None).cpus(2) is None  # no load average either (Windows): one process
    # No ticks passed between the samples: the load average too.
    assert sampler((10, 20), (10, 20), load=0.2).cpus(2) == pytest.approx(1.8)
    assert proc_stat_ticks("/nonexistent/stat") is None


def test_proc_stat_ticks(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  75398 7 4924 238274 703 1 228 2227 40 2\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    # idle + iowait; user, nice, system, idle, iowait, irq, softirq, steal (guest is in user).
    assert proc_stat_ticks(str(stat)) == (238274 + 703, 75398 + 7 + 4924 + 238274 + 703 + 1 + 228 + 2227)
    stat.write_text("intr 1 2 3\n")
    assert proc_stat_ticks(str(stat)) is None
    if os.path.exists("/proc/stat"):
        idle, total = proc_stat_ticks()
        assert 0 <= idle <= total


def test_shard_count_by_file_engine_size_and_idle_cores(tmp_path, monkeypatch):
    big = tmp_path / "big.pcap"
    with open(big, "wb") as f:
        f.truncate(SHARD_MIN_BYTES)  # sparse: only its size matters
    small = CAPTURES / "dg_success.pcap"
    packed = tmp_path / "big.pcap.gz"
    with open(packed, "wb") as f:
        f.write(gzip.compress(small.read_bytes()))
        f.truncate(SHARD_MIN_BYTES)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr("analyzer.shards.idle_cpus", idle_sampler(3.7, 4))
    one = dict(single_capture=True, native=True)
    assert shard_count(str(big), "auto", **one) == 4
    assert shard_count(str(big), "auto", idle=idle_sampler(15.8, 16), **one) == 4  # MAX_AUTO_SHARDS
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert shard_count(str(big), "auto", idle=idle_sampler(15.8, 16), **one) == 4  # MAX_AUTO_SHARDS
    assert shard_count(str(big), 16, **one) == 16
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert shard_count(str(small), "auto", **one) == 1  # small
    assert shard_count(str(small), 2, **one) == 2  # asked for
    assert shard_count(str(packed), "auto", **one) == 1  # gzip: every worker would decompress it all
    assert shard_count(str(packed), 2, **one) == 2  # unless asked for
    assert shard_count(str(fifo), 2, **one) == 1  # a pipe
    assert shard_count(str(big), 2, single_capture=True, native=False) == 1  # tshark engine
    assert shard_count(str(big), "auto", single_capture=False, native=True) == 1  # a folder: -j
    assert shard_count(str(big), 1, **one) == 1  # --shards off
    assert shard_count(str(big), "auto", idle=idle_sampler(1.6, 4), **one) == 2  # 1.6 idle cores
    assert shard_count(str(big), "auto", idle=idle_sampler(1.4, 4), **one) == 1  # a busy machine
    # 2 CPUs, right after another process (tshark) ended: the load average still says ~1,
    # /proc/stat says both are idle now; and conversely.
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert shard_count(str(big), "auto", idle=sampler((1000, 5000), (1019, 5020), load=1.0), **one) == 2
    assert shard_count(str(big), "auto", idle=sampler((1000, 5000), (1009, 5020), load=0.0), **one) == 1
    # No /proc/stat: the load average decides, as before.
    assert shard_count(str(big), "auto", idle=sampler(None, load=0.4), **one) == 2
    assert shard_count(str(big), "auto", idle=sampler(None, load=0.6), **one) == 1
    assert shard_count(str(big), "auto", idle=sampler(None), **one) == 1


def test_auto_splits_a_big_capture_over_the_idle_cores(monkeypatch):
    monkeypatch.setattr("analyzer.shards.SHARD_MIN_BYTES", 100_000)  # dg_multi: 167 KB
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr("analyzer.shards.idle_cpus", idle_sampler(1.8, 2))
    path = str(CAPTURES / "dg_multi.pcapng")
    merged = []
    real_merge = report_cmd._merge_task
    monkeypatch.setattr(report_cmd, "_merge_task", lambda p, *a: merged.append((p, len(a[-1]))) or real_merge(p, *a))
    single, _ = analyze_files([path], Options(), False)
    sharded, fallbacks = analyse_counting_fallbacks(path, Options(), "auto")
    assert (merged, fallbacks) == ([(path, 2)], [])
    assert sharded.to_json() == single[0].to_json()
    monkeypatch.setattr("analyzer.shards.idle_cpus", idle_sampler(0.8, 2))  # under 2 idle cores: one process
    assert analyse_counting_fallbacks(path, Options(), "auto")[1] == [path] and len(merged) == 1


def test_the_command_line_takes_the_first_idle_sample_at_start_up(monkeypatch):
    started = []
    monkeypatch.setattr("analyzer.shards.idle_cpus", SimpleNamespace(start=lambda: started.append(1)))
    from analyzer.cli import main
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert started == [1]
    with pytest.raises(SystemExit):
        main(["--version"])  # no report, no sample (and no import of the analysis)
    assert started == [1]


def test_shards_flag_on_the_command_line():
    path = str(CAPTURES / "dg_multi.pcapng")
    one = run_cli("report", "--format", "json", "--shards", "off", path)
    split = run_cli("report", "--format", "json", "--shards", "2", path)
    assert (split.returncode, split.stdout, split.stderr) == (one.returncode, one.stdout, one.stderr)
    assert one.returncode == 1 and one.stdout.startswith("{")
    bad = run_cli("report", "--shards", "0", path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "dgcap: error: argument --shards: auto, off or a number of processes (1 or more) "
        "(see 'dgcap report --help')"]


def test_standard_input_is_never_split_even_when_it_is_a_regular_file(tmp_path):
    # `dgcap report /dev/stdin < big.pcap`: a regular file behind /dev/stdin, but worker
    # processes do not share the parent's standard input.
    with open(CAPTURES / "dg_success.pcap", "rb") as f:
        out = subprocess.run([sys.executable, "-c", "from analyzer.shards import shard_count; "
                              "import os, stat; assert stat.S_ISREG(os.stat('/dev/stdin').st_mode); "
                              "print(shard_count('/dev/stdin', 2, single_capture=True, native=True))"],
                             stdin=f, capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout == "1\n"
    assert shard_count(str(CAPTURES / "dg_success.pcap"), 2, single_capture=True, native=True) == 2
