"""Both cores for one capture: its TCP connections split over worker processes.

Every worker reads and decodes the whole file (cheap next to the rest), so every one
numbers every connection the way Wireshark does (`tcp.stream`: TcpTracker keeps a
tombstone of each connection it does not analyse, which is all the numbering needs), and
every one sees the DNS answers (UDP, and DNS-over-TCP connections, which each worker
reads for itself: `_DnsReplica`).  Only the connections of its shard (a stable hash of
the stream number) go on to reassembly, HTTP, WebSocket, Deepgram and the rules.

What depends on other connections is not decided in the worker but recorded, with the
moment it happened (the frame being read, the stream, and a counter), and replayed by
the parent in that order after merging (`merge_shards`): which sessions started, the
`other` summary and NAT/span copies (connections.py, copies.py), capture-level counts of
HTTP heads too long.  The parent then does what one process does once every connection
has ended (proxy legs, copies folded, sessions numbered, capture findings), so the report
is the same, byte for byte, as the single-process one.

The capture's budget of server text kept in sessions (Options.max_kept_server_text) is spent
in the order messages arrive over every connection: each worker spends a budget of its own
(so it keeps at least what one process keeps, and no more memory), notes each message it
keeps, and the parent finds where one process would have run out and drops the messages
kept after it.

Secrets are masked in the workers, each its own sessions at the same time (redaction is
most of what the parent would do after merging), when nothing the merge does can depend on
what is masked (`ShardSync`): the workers wait for each other once their packets are read,
and redact when no shard holds a proxy's client leg (link_proxy_legs reads Host headers and
SNIs) and all of them together kept less server text than the capture's budget (so the
parent drops no message, and the secrets found in messages are the same).  Otherwise the
parent redacts after merging, as for one process.

Where identity cannot be had cheaply the worker says so (`NotShardable`) and the capture
is analysed in one process: more connections than --max-connections (eviction depends on
every connection's state), or a session that reached its own cap of kept messages
(limits.SESSION_KEPT_*) in a capture whose budget ran out (which messages it then keeps
depends on the ones dropped for the budget).
"""
from __future__ import annotations

import dataclasses
import heapq
import mmap
import os
import stat
import struct
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

from .connections import ConnectionCensus
from .dns import DnsTcpStream
from .legs import is_client_leg
from .model import SERVER, CaptureReport

# A capture smaller than this is analysed in one process unless --shards N asks otherwise:
# starting workers costs about 0.2 s each, and below ~64 MB one process takes under a second.
SHARD_MIN_BYTES = 64 << 20
# Processes `auto` uses at most: every worker reads and decodes the whole file (~15% of one
# process's work on pure streams) and holds its own memory, so more gain little.
MAX_AUTO_SHARDS = 4
_PACKETS, _END = 0, 1  # phases of the analysis: reading packets, ending what is still open


def shard_of(stream: int, count: int) -> int:
    """The shard analysing tcp.stream `stream`: Fibonacci hashing, the same in every process,
    spreads consecutive and strided stream numbers (a token request before each WebSocket)."""
    return (((stream * 2654435769) & 0xFFFFFFFF) * count) >> 32


class NotShardable(Exception):
    """This capture's report could differ if split: analyse it in one process."""


def shard_count(path: str, requested, *, single_capture: bool, native: bool,
                idle: Optional["IdleCpus"] = None) -> int:
    """How many processes to split the capture at `path` over (1: do not split).

    requested: an int (1 or less: never; N: N processes whatever the file) or "auto": split a
    single uncompressed capture of SHARD_MIN_BYTES or more over the cores that are idle now
    (measured by `idle`, default `idle_cpus`: IdleCpus; rounded, at most MAX_AUTO_SHARDS).  Not
    auto for gzip input: every worker decompresses the whole file (+46% CPU for 2 workers on the
    pure-stream capture, README "Both cores for one capture").  Pipes and the tshark engine: never.
    """
    if requested != "auto" and requested <= 1 or not native:
        return 1
    if path.startswith(("/dev/", "/proc/")):  # /dev/stdin, /dev/fd/N: the workers' stdin is not ours
        return 1
    try:
        st = os.stat(path)
    except OSError:
        return 1
    if not stat.S_ISREG(st.st_mode):
        return 1
    if requested != "auto":
        return requested
    if not single_capture or st.st_size < SHARD_MIN_BYTES or _gzip(path):
        return 1
    cores = os.cpu_count() or 1
    free = (idle or idle_cpus).cpus(cores)
    if free is None:
        return 1
    n = min(int(free + 0.5), cores, MAX_AUTO_SHARDS)
    return n if n >= 2 else 1


# /proc/stat counts in clock ticks (USER_HZ, 100 a second): over IDLE_SAMPLE_SECONDS of 2 CPUs
# that is 20 ticks, enough to tell 1 idle CPU from 2.  A first sample older than
# IDLE_SAMPLE_MAX_AGE is taken again (an API caller deciding long after start-up).
IDLE_SAMPLE_SECONDS = 0.1
IDLE_SAMPLE_MAX_AGE = 5.0


def proc_stat_ticks(path: str = "/proc/stat") -> Optional[tuple[int, int]]:
    """(idle, total) clock ticks of every CPU since boot, from the aggregate `cpu` line of
    /proc/stat: idle + iowait, and user .. steal (guest time is counted in user already);
    None where there is no /proc/stat."""
    try:
        with open(path, "rb") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if len(fields) < 6 or fields[0] != b"cpu":
        return None
    try:
        ticks = [int(x) for x in fields[1:9]]
    except ValueError:
        return None
    return ticks[3] + ticks[4], sum(ticks)


def own_ticks() -> float:
    """CPU time of this process so far (every thread), in the clock ticks of /proc/stat."""
    t = os.times()
    return (t.user + t.system) * _CLOCK_TICKS


try:
    _CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):
    _CLOCK_TICKS = 100


class IdleCpus:
    """How many CPUs are idle now: /proc/stat's aggregate idle time over a short interval (the
    one-minute load average lags: right after a busy process ends it still counts it, and a
    process that just started does not count yet).

    start() takes the first sample (dgcap's start-up does it: cli.main), cpus() the second,
    waiting until IDLE_SAMPLE_SECONDS have passed since the first: the interval overlaps the
    start-up's imports instead of adding to them.  This process's own CPU time in the interval
    counts as idle (it is the start-up, and the process waits for its workers).  Where there is
    no /proc/stat, the load average: CPUs minus the one-minute load.

    read, own, clock, sleep and loadavg are proc_stat_ticks, own_ticks, time.monotonic,
    time.sleep and os.getloadavg, or what a test gives instead.
    """

    def __init__(self, read=proc_stat_ticks, own=own_ticks, clock=time.monotonic, sleep=time.sleep,
                 loadavg=None):
        self._read = read
        self._own = own
        self._clock = clock
        self._sleep = sleep
        self._loadavg = loadavg
        self._first: Optional[tuple] = None  # (clock, (idle, total) or None, own ticks)

    def start(self) -> None:
        self._first = (self._clock(), self._read(), self._own())

    def cpus(self, cores: int) -> Optional[float]:
        """Idle CPUs of `cores` now (a fraction), or None when it cannot be told."""
        if self._first is None or self._clock() - self._first[0] > IDLE_SAMPLE_MAX_AGE:
            self.start()
        when, first, own = self._first  # type: ignore[misc]
        self._first = None  # the next decision samples again
        if first is not None:
            wait = when + IDLE_SAMPLE_SECONDS - self._clock()
            if wait > 0:
                self._sleep(wait)
            second = self._read()
            if second is not None and second[1] > first[1]:
                idle = second[0] - first[0] + max(0.0, self._own() - own)
                return cores * min(1.0, max(0.0, idle / (second[1] - first[1])))
        try:
            load = (self._loadavg or os.getloadavg)()[0]
        except (OSError, AttributeError):  # no load average either (Windows): do not guess
            return None
        return max(0.0, cores - load)


idle_cpus = IdleCpus()


def _gzip(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError:
        return False


# -- in each worker ------------------------------------------------------------------

class ShardWork:
    """One worker's share: which connections it analyses, and the record of what the parent
    must replay in capture order (given to CaptureAnalyzer as `shard`)."""

    def __init__(self, index: int, count: int, max_connections: int = 0):
        self.index = index
        self.count = count
        self.max_connections = max_connections
        self.loop = None  # the PacketLoop reading the capture (its frame_no: the frame being read)
        self.phase = _PACKETS
        self._seq = 0
        self.ops: list[tuple] = []  # (moment, kind, args)
        self.started: dict[int, tuple] = {}  # id(session) -> moment it started
        self.budgets: dict[int, _SessionBudget] = {}  # id(session) -> its view of the text budget
        self.texts: list[tuple] = []  # server text kept: (moment, characters, session, index)
        self.declined = 0  # connections left to other shards (the tracker counts them ignored)
        # Reassembly counters of DNS replicas (another shard counts them).
        self.foreign = {"retransmissions": 0, "holes": 0, "hole_bytes": 0, "conflicts": 0}

    def moment(self, stream: int) -> tuple:
        """When, in one process, this would have happened: only the connection of the packet
        being read acts during it (two when a SYN ends a stream and opens the next, in
        stream order), and the end of the capture ends the rest in stream order."""
        self._seq += 1
        frame = self.loop.frame_no if self.phase == _PACKETS and self.loop is not None else 0
        return (self.phase, frame, stream, self._seq)

    def record(self, kind: str, stream: int, *args) -> None:
        self.ops.append((self.moment(stream), kind, args))

    def session_started(self, session, budget):
        """Note when `session` started; returns the text budget its SessionBuilder spends."""
        self.started[id(session)] = self.moment(session.tcp_stream)
        if budget is None:
            return None
        view = self.budgets[id(session)] = _SessionBudget(budget, self, session)
        return view

    def capture_ended(self) -> None:
        self.phase = _END

    def census(self, dns, hosts, list_all: bool) -> ConnectionCensus:
        census = _ShardCensus(dns, hosts, list_all)
        census.shard = self
        return census

    def factory(self, make, analysis):
        """The TcpTracker factory: this shard's connections get `make(conn)`; the others a
        tombstone (their number kept), or a DNS replica when they may carry DNS."""
        index, count, limit = self.index, self.count, self.max_connections

        def shard_factory(conn):
            if limit and conn.stream >= limit:
                # One process might evict idle connections now, depending on all of them.
                raise NotShardable(f"more than {limit} TCP connections")
            if shard_of(conn.stream, count) == index:
                return make(conn)
            if conn.client[1] == 53 or conn.server[1] == 53:
                return _DnsReplica(conn, self, analysis.dns)
            self.declined += 1
            return None
        return shard_factory


class _ShardCensus(ConnectionCensus):
    """settle() as in one process; what the other connections change (the `other` summary,
    matching copies) is recorded for the parent."""

    shard: ShardWork

    def add_other(self, facts, sn=None) -> None:
        self.shard.record("other", facts.tcp_stream, dataclasses.replace(facts, timeline=None), sn)

    def _remember(self, facts, item) -> None:
        self.shard.record("remember", facts.tcp_stream, facts.print, item)


class _SessionBudget:
    """The worker's TextBudget as one session's SessionBuilder spends it: what it keeps is
    noted with its moment and place (session, index in Session.messages)."""

    __slots__ = ("budget", "work", "session", "drops")

    def __init__(self, budget, work: ShardWork, session):
        self.budget = budget
        self.work = work
        self.session = session
        self.drops = 0  # messages this session dropped for the budget

    @property
    def limit(self) -> int:
        return self.budget.limit

    @property
    def left(self) -> int:
        return self.budget.left

    @left.setter
    def left(self, value: int) -> None:
        s = self.session
        self.work.texts.append((self.work.moment(s.tcp_stream), self.budget.left - value, s, len(s.messages)))
        self.budget.left = value

    @property
    def dropped(self) -> int:
        return self.budget.dropped

    @dropped.setter
    def dropped(self, value: int) -> None:
        self.drops += value - self.budget.dropped
        self.budget.dropped = value


class _DnsReplica:
    """A connection of another shard that may be DNS over TCP: its answers name the servers
    of this shard's connections, so it is read here too (as ConnectionAnalyzer decides it:
    server port 53 when its first bytes arrive), and reports nothing."""

    def __init__(self, conn, work: ShardWork, dns):
        self.conn = conn
        self.work = work
        self.dns = dns
        self.stream: Optional[DnsTcpStream] = None
        self.decided = False

    def data(self, direction: int, data, frame: int, ts: float) -> None:
        if not self.decided:
            self.decided = True
            if self.conn.server[1] == 53:
                self.stream = DnsTcpStream(self.dns)
        if self.stream is not None and direction == SERVER:
            self.stream.feed(bytes(data), frame)

    def hole(self, direction: int, size: int, frame: int, ts: float) -> None:
        if self.stream is not None and direction == SERVER:
            self.stream.hole()

    def tcp_end(self, kind: str, direction: int, frame: int, ts: float) -> None:
        pass

    def finish(self) -> None:
        # The tracker adds these to its totals when the connection retires: the owner's.
        foreign = self.work.foreign
        for r in self.conn.reassemblers or ():
            foreign["retransmissions"] += r.retransmissions
            foreign["holes"] += r.hole_count
            foreign["hole_bytes"] += r.hole_bytes
            foreign["conflicts"] += r.conflict_count


class ShardSync:
    """Shared by the workers of one capture, forked from the parent that makes it: each tells
    the others what decides whether it may redact its own sessions, then waits for all of them
    (analyze_shard; a worker that fails breaks the barrier, and then none redacts).  The numbers
    go through an anonymous shared mapping (no ctypes: multiprocessing.sharedctypes costs ~10 ms
    of start-up), so only for the fork start method."""

    # A worker waits this long for the others at most (one analysing a much larger share of
    # the connections, on a loaded machine); then the parent redacts.
    WAIT_SECONDS = 3600.0
    _SLOT = struct.Struct("=qb")  # characters of server text the shard kept, a proxy client leg in it

    def __init__(self, ctx, count: int):
        self.count = count
        self.barrier = ctx.Barrier(count)
        self._slots = mmap.mmap(-1, self._SLOT.size * count)  # MAP_SHARED: the forked workers' too

    def may_redact(self, index: int, kept: int, client_legs: bool, limit: int) -> bool:
        """Whether every shard may redact its own sessions before the merge (True for all of
        them or for none): the merge then changes nothing redaction reads or writes."""
        self._SLOT.pack_into(self._slots, index * self._SLOT.size, kept, client_legs)
        try:
            self.barrier.wait(self.WAIT_SECONDS)
        except threading.BrokenBarrierError:
            return False
        shards = [self._SLOT.unpack_from(self._slots, i * self._SLOT.size) for i in range(self.count)]
        # Under the budget in all: _spend_text_budget drops nothing (it drops past `limit`).
        return not any(legs for _, legs in shards) and (limit <= 0 or sum(kept for kept, _ in shards) < limit)

    def abort(self) -> None:
        self.barrier.abort()


@dataclass
class ShardResult:
    """What a worker sends back (pickled)."""
    index: int
    count: int
    sessions: list  # (moment started, Session), in that order
    ops: list  # (moment, kind, args), in that order
    tcp_stats: dict  # this shard's share (connections: all of them)
    keylog: tuple  # (secrets held, lookups, matches)
    texts: list  # server text kept: (moment, characters, session, index in its messages)
    text_dropped: int  # messages dropped for this worker's budget
    capped: bool  # a session dropped messages for its own caps
    packets: int
    first_time: Optional[float]
    last_time: Optional[float]
    report: CaptureReport  # format, compressed, bytes (no sessions)
    # Shard 0 only: the decoder (capture-level counters and findings) and the file's end.
    decoder: object = None
    capture: object = None
    redacted: bool = False  # its sessions' secrets are masked (ShardSync)


def analyze_shard(path: str, options, index: int, count: int, sync: Optional[ShardSync] = None) -> ShardResult:
    """Worker side: read the whole capture, analyse shard `index` of `count`.  Raises
    NotShardable (and CaptureError, like analyze_capture).  sync: mask the secrets of this
    shard's sessions here when the other workers agree (ShardSync)."""
    try:
        result, analysis = _analyze_shard(path, options, index, count)
    except BaseException:
        if sync is not None:
            sync.abort()  # the others do not wait for this one
        raise
    if sync is not None:
        kept = sum(text[1] for text in result.texts)
        if sync.may_redact(index, kept, any(is_client_leg(s) for s in analysis.sessions),
                           options.max_kept_server_text):
            from .redact import redact_session
            for s in analysis.sessions:
                redact_session(s)
            result.redacted = True
    return result


def _analyze_shard(path: str, options, index: int, count: int):
    from .pipeline import read_capture
    work = ShardWork(index, count, options.max_connections)
    report, analyzer, cap = read_capture(path, options, work)
    if report.stats.get("interrupted"):
        raise NotShardable("interrupted")
    analyzer.end_of_capture()
    analysis = analyzer.analysis
    tcp = dict(analyzer.tracker.stats)
    tcp["ignored_connections"] -= work.declined
    for name, n in work.foreign.items():
        tcp[name] -= n
    budget = analysis.text_budget
    keylog = analysis.keylog
    decoder = capture = None
    if index == 0:
        decoder = analyzer.decoder
        decoder.dns_sink = None  # not picklable, and done with
        decoder.muted, decoder._muted_ports = set(), set()
        capture = SimpleNamespace(truncated=cap.truncated, packet_count=cap.packet_count)
    capped = any(s.messages_dropped > work.budgets[id(s)].drops for s in analysis.sessions
                 if id(s) in work.budgets)
    return ShardResult(index, count, [(work.started[id(s)], s) for s in analysis.sessions], work.ops, tcp,
                       (len(keylog), keylog.lookups, keylog.matches), work.texts,
                       budget.dropped if budget is not None else 0, capped,
                       analyzer.packets, analyzer.first_time, analyzer.last_time, report, decoder,
                       capture), analysis


# -- in the parent -------------------------------------------------------------------

_SUMMED = ("ignored_connections", "retransmissions", "holes", "hole_bytes", "conflicts")


def merge_shards(path: str, options, results: list[ShardResult]) -> CaptureReport:
    """The report one process would have made, from every shard's result.  Raises
    NotShardable when a shard's result cannot be merged into exactly that."""
    from .pipeline import CaptureAnalyzer, add_capture_findings
    results = sorted(results, key=lambda r: r.index)
    first = results[0]
    if [r.index for r in results] != list(range(first.count)):
        raise NotShardable("a shard is missing")
    dropped = _spend_text_budget(options.max_kept_server_text, results)
    report = CaptureReport(path=path, format=first.report.format, compressed=first.report.compressed)
    report.bytes = first.report.bytes
    merger = CaptureAnalyzer(options, report)  # key log findings as one process makes them
    analysis = merger.analysis
    if analysis.text_budget is not None:
        analysis.text_budget.dropped = dropped
    census = analysis.census
    for _moment, kind, args in heapq.merge(*(r.ops for r in results)):
        if kind == "other":
            census.add_other(*args)
        elif kind == "remember":
            census.copies.add(*args)
        else:
            analysis.header_overflow(*args)
    sessions = [s for _moment, s in heapq.merge(*(r.sessions for r in results))]
    tcp = dict(first.tcp_stats)
    for name in _SUMMED:
        tcp[name] = sum(r.tcp_stats[name] for r in results)
    merger.packets, merger.first_time, merger.last_time = first.packets, first.first_time, first.last_time
    merger.conclude_capture(sessions, tcp, first.decoder.stats)
    keylog = (max(r.keylog[0] for r in results), sum(r.keylog[1] for r in results),
              sum(r.keylog[2] for r in results))
    add_capture_findings(report, options, keylog, first.capture, first.decoder)
    return report


def _spend_text_budget(limit: int, results: list[ShardResult]) -> int:
    """Drop the server text one process would not have kept (it ran out of budget there);
    returns the messages one process drops for the budget."""
    if limit <= 0:
        return 0
    texts = list(heapq.merge(*(r.texts for r in results)))
    spent, cut = 0, len(texts)
    for i, text in enumerate(texts):
        if spent >= limit:
            cut = i
            break
        spent += text[1]
    if spent >= limit and any(r.capped for r in results):
        raise NotShardable("a session reached its own cap of kept messages after the budget ran out")
    for _moment, _characters, session, index in reversed(texts[cut:]):  # latest first
        del session.messages[index]
        session.messages_dropped += 1
    return len(texts) - cut + sum(r.text_dropped for r in results)
