"""TCP connections, their two directions, their ends, and Wireshark's stream numbers.

Stream numbering follows tshark 4.0 (`tcp.stream`), verified against tshark
4.0.17 with hand-built and captured pcaps (tests/test_tcp_wireshark.py):

* Connections are keyed by the unordered pair of (address, port) endpoints.
  A packet whose 4-tuple has no connection yet opens one and takes the next
  index, whatever its flags.
* Each direction has a base sequence number, set by the first packet sent in
  that direction (its seq if it is a SYN, else seq - 1), or by the first
  packet from the other side that has the ACK flag (ack - 1), whichever comes
  first.  Every SYN-ACK (FIN or RST bits notwithstanding) then overwrites its
  own direction's base with its seq; nothing else changes a base.
* Directions are Wireshark's: when both endpoints are identical (same
  address and port) every packet is the same direction.
* A SYN without ACK whose seq differs from its direction's base (when that
  base is set) opens a new connection with the next index; the old one is
  over.  Nothing else does: a SYN repeating the base ISN stays in the old
  connection even after FIN or RST, no amount of idle time splits one, a
  SYN-ACK never splits, and a SYN from a side that has sent nothing (and was
  never ACKed) just sets that side's base.  Everything after the split,
  stale retransmissions of the old connection included, goes to the new one.
* A TCP header quoted inside an ICMP error is looked up the same way (it can
  open a connection, or split one with a quoted SYN) but sets no base: feed
  those through `quoted()`.  ICMP errors quoting only 8 bytes of TCP header
  (no flags) are ignored by Wireshark and must not be fed.

Newer Wireshark releases may have refined the SYN rule; this emulates 4.0.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Optional

from .reassembly import ACK_WAIT_SECONDS, SEQ_MASK, StreamReassembler

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# Connection._state
_LIVE, _IGNORED, _CLOSED, _REPLACED, _RESERVED = range(5)
_STATE_NAMES = ("live", "ignored", "closed", "replaced", "reserved")


class _Tombstone:
    """What the table keeps of a connection nobody analyses (any more): its
    number and Wireshark's base sequence numbers, which decide whether a later
    SYN on the same 4-tuple starts a new stream."""

    __slots__ = ("stream", "_base0", "_base1", "_state")
    _fast = False
    _r = None

    def __init__(self, stream, base0, base1, state):
        self.stream = stream
        self._base0 = base0
        self._base1 = base1
        self._state = state  # _IGNORED or _CLOSED


class Connection:
    """One TCP connection (one Wireshark stream).  Directions: 0 client->server, 1 server->client.

    Internally everything is kept per *side* of the table key (side 0 is the
    endpoint that sorts first); `_client_side` maps sides to directions, so
    `swap_roles()` is a flip of one bit.
    """

    __slots__ = (
        "stream", "role_guessed", "syn_frame", "syn_time",
        "first_frame", "first_time", "last_frame", "last_time", "handler",
        "_key", "_client_side", "_base0", "_base1", "_r", "_fast", "_state", "_tracker",
        "_on_data", "_on_hole", "_fins", "_fin_wait", "_fin_done", "_rst",
    )

    def __init__(self, tracker: TcpTracker, key: tuple, stream: int) -> None:
        self.stream = stream
        self._key = key
        self._tracker = tracker
        # (Annotated: the compiled build keeps these as native fields, read per packet.)
        self._client_side: int = 0
        self.role_guessed = True
        self.syn_frame: Optional[int] = None
        self.syn_time: Optional[float] = None
        self.first_frame: Optional[int] = None
        self.first_time: Optional[float] = None
        self.last_frame: Optional[int] = None
        self.last_time: Optional[float] = None
        self.handler: Any = None
        self._base0: Optional[int] = None  # Wireshark's base_seq per side
        self._base1: Optional[int] = None
        self._r: Optional[tuple[StreamReassembler, StreamReassembler]] = None
        self._fast: bool = False
        self._state: int = _RESERVED
        self._on_data: Any = None
        self._on_hole: Any = None
        self._fins: Any = None  # per side: (frame_no, ts) of the first FIN
        self._fin_wait: int = 0  # bit per side: FIN seen, not yet reported
        self._fin_done: int = 0  # bit per side: FIN reported
        self._rst: Any = None  # (side, frame_no, ts)

    @property
    def client(self) -> tuple:
        key = self._key
        side = self._client_side
        return (key[side], key[2 + side])

    @property
    def server(self) -> tuple:
        key = self._key
        side = self._client_side ^ 1
        return (key[side], key[2 + side])

    @property
    def reassemblers(self) -> Optional[tuple]:
        """(client->server, server->client), or None once the connection is ignored or over."""
        r = self._r
        if r is None:
            return None
        side = self._client_side
        return (r[side], r[side ^ 1])

    @property
    def state(self) -> str:
        return _STATE_NAMES[self._state]

    @property
    def fins(self) -> tuple:
        """Per direction, (frame_no, ts) of the first FIN, or None."""
        fins = self._fins
        if fins is None:
            return (None, None)
        side = self._client_side
        return (fins[side], fins[side ^ 1])

    @property
    def rst(self) -> Optional[tuple]:
        """(direction, frame_no, ts) of the first RST, or None."""
        if self._rst is None:
            return None
        side, frame_no, ts = self._rst
        return (side ^ self._client_side, frame_no, ts)

    @property
    def isns(self) -> tuple:
        """(client, server) base sequence numbers as Wireshark takes them (None if unknown)."""
        side = self._client_side
        bases = (self._base0, self._base1)
        return (bases[side], bases[side ^ 1])

    def swap_roles(self) -> None:
        self._client_side ^= 1

    def redirect_data(self, data: Optional[Callable]) -> None:
        """Deliver later in-order bytes to data(direction, bytes, frame_no, ts) instead of
        the handler's data() (None: back to the handler).  A layer that has taken over the
        connection's bytes (the WebSocket frames after an upgrade) is called directly, not
        through a dispatching handler; holes, ends and finish still go to the handler."""
        if self._state == _LIVE:
            self._on_data = data if data is not None else self.handler.data

    def ignore(self) -> None:
        """Stop delivering: buffers are dropped, the table keeps only a tombstone.

        This object stays as it is (its last_frame is no longer updated).
        """
        if self._state != _LIVE:
            return
        handler = self.handler
        self._tracker._retire(self, _IGNORED)
        self._tracker._ignored += 1
        abandon = getattr(handler, "abandon", None)
        if abandon is not None:
            abandon()

    def __repr__(self):
        return (f"<Connection stream={self.stream} {self.state} client={self.client} "
                f"server={self.server}{' guessed' if self.role_guessed else ''}>")


class TcpTracker:
    """Routes TCP packets to per-connection handlers.

    ``factory(conn)`` is called on the first packet of each connection and
    returns a handler, or None to keep only a tombstone (for numbering).
    Handler callbacks: ``data(direction, data, frame_no, ts)``,
    ``hole(direction, size, frame_no, ts)``, ``tcp_end(kind, direction,
    frame_no, ts)`` ("fin" once per direction, when the stream reaches it;
    "rst" once), ``finish()`` once the connection is over, and optionally
    ``abandon()`` instead of ``finish()`` when the connection is ignored.

    ``max_connections`` (0: no limit) bounds the connections analysed at once.  At the
    limit, a new connection first evicts the oldest live one that has carried no payload
    yet (half-open or idle: it is finished as it stands); when every live connection
    carries data, the new one is not analysed (it keeps its stream number).  Both are
    counted in ``stats`` (connections_evicted, connections_over_limit).
    """

    def __init__(self, factory, max_pending: int = 4 * 1024 * 1024, verify_window: int = 32 * 1024,
                 max_connections: int = 0, max_ack_wait: float = ACK_WAIT_SECONDS):
        self._factory = factory
        self.max_pending = max_pending
        self.max_ack_wait = max_ack_wait  # see StreamReassembler: ACKed data may come later
        self.verify_window = verify_window
        self.max_connections = max_connections
        self._live = 0
        self._evictable: deque = deque()  # live connections in opening order (pruned lazily)
        self._evicted = 0
        self._over_limit = 0
        self._table: dict[tuple, Any] = {}  # 4-tuple -> Connection or _Tombstone
        self._next_stream = 0
        self._ignored = 0
        # Totals of reassemblers already dropped; live ones are added in `stats`.
        self._retransmissions = 0
        self._holes = 0
        self._hole_bytes = 0
        self._conflicts = 0
        # on_quiet(key), when set, is told of a 4-tuple (src, dst, sport, dport) whose packets
        # change nothing until a SYN comes (an ignored or finished connection whose base
        # sequence numbers are known): the capture layer may drop them (PacketDecoder.mute).
        self.on_quiet: Optional[Callable[[tuple], None]] = None

    # -- hot path ---------------------------------------------------------

    def packet(self, frame_no, ts, src, dst, sport, dport, seq, ack, flags, payload, missing=0):
        self.segment(frame_no, ts, (src, dst, sport, dport, seq, ack, flags, payload, missing))

    def segment(self, frame_no: int, ts: float,
                seg: tuple[Any, Any, int, int, int, int, int, Any, int]) -> None:
        """packet() taking PacketDecoder's tuple (src, dst, sport, dport, seq, ack, flags,
        payload, missing) as it is: cheaper than spreading it into arguments."""
        src, dst, sport, dport, seq, ack, flags, payload, missing = seg
        if src < dst or (src == dst and sport < dport):
            key = (src, dst, sport, dport)
            side = 0
        else:
            key = (dst, src, dport, sport)
            side = 1
        entry = self._table.get(key)
        if not isinstance(entry, Connection) or flags & 7 or not entry._fast:
            if (type(entry) is _Tombstone and not flags & SYN and entry._base0 is not None
                    and entry._base1 is not None):
                # Ignored or over, both bases known: only a SYN can matter (_packet_slow).
                if self.on_quiet is not None:
                    self.on_quiet(key)
                return
            self._packet_slow(entry, key, side, frame_no, ts, seq, ack, flags, payload, missing)
            return
        conn: Connection = entry
        conn.last_frame = frame_no
        conn.last_time = ts
        r = conn._r
        assert r is not None  # a _fast connection is live
        if flags & ACK:
            peer = r[side ^ 1]
            nxt = peer._next_seq
            # An ACK of data already delivered (at or behind next_seq, the usual case) changes
            # nothing: acked() would return at once.
            if ack != nxt and (nxt is None or (ack - nxt) & SEQ_MASK < 0x80000000):
                chunks = peer.acked(ack, frame_no, ts)
                if chunks:
                    self._deliver(conn, side ^ 1, chunks)
                    if not conn._fast:
                        return
        if payload or missing:
            mine = r[side]
            if not missing and mine.in_order(seq, payload):
                # The common case: the next bytes of the stream, delivered as they are.
                conn._on_data(side ^ conn._client_side, payload, frame_no, ts)
                return
            chunks = mine.segment(seq, payload, frame_no, ts, missing)
            if chunks:
                direction = side ^ conn._client_side
                for data, chunk_frame, chunk_ts, hole in chunks:
                    if data is not None:
                        conn._on_data(direction, data, chunk_frame, chunk_ts)
                    else:
                        conn._on_hole(direction, hole, chunk_frame, chunk_ts)
                    if not conn._fast:
                        return
                    direction = side ^ conn._client_side

    # -- everything else --------------------------------------------------

    def quoted(self, frame_no, ts, src, dst, sport, dport, seq, flags):
        """A TCP header quoted in an ICMP error: affects stream numbering only."""
        # The key and side segment() computes inline, in tuple order: (src, sport) first.
        side = 0 if (src, sport) < (dst, dport) else 1
        key = (dst, src, dport, sport) if side else (src, dst, sport, dport)
        conn = self._table.get(key)
        if conn is None:
            self._open(key)
        elif flags & (SYN | ACK) == SYN:
            self._reopened(conn, key, side, seq)

    def finish(self) -> None:
        """End of capture: every live connection is flushed and finished."""
        live = [c for c in self._table.values() if c._state == _LIVE]
        live.sort(key=_stream_of)
        for conn in live:
            self._end(conn, _CLOSED)

    @property
    def stats(self) -> dict:
        retransmissions, holes = self._retransmissions, self._holes
        hole_bytes, conflicts = self._hole_bytes, self._conflicts
        for conn in self._table.values():
            if conn._r is not None:
                for r in conn._r:
                    retransmissions += r.retransmissions
                    holes += r.hole_count
                    hole_bytes += r.hole_bytes
                    conflicts += r.conflict_count
        out = {"connections": self._next_stream, "ignored_connections": self._ignored,
               "retransmissions": retransmissions, "holes": holes,
               "hole_bytes": hole_bytes, "conflicts": conflicts}
        if self.max_connections:
            out.update(max_connections=self.max_connections, connections_evicted=self._evicted,
                       connections_over_limit=self._over_limit)
        return out

    def connection(self, src, dst, sport, dport):
        """The connection holding this 4-tuple (either order) now: a Connection,
        a tombstone (only `.stream`) once ignored or over, or None."""
        if src < dst or (src == dst and sport < dport):
            return self._table.get((src, dst, sport, dport))
        return self._table.get((dst, src, dport, sport))

    def _open(self, key) -> Connection:
        conn = Connection(self, key, self._next_stream)
        self._next_stream += 1
        self._table[key] = conn
        return conn

    def _start(self, conn, side, frame_no, ts, flags) -> None:
        """First real packet of `conn`: decide the roles and ask the factory."""
        conn.first_frame = frame_no
        conn.first_time = ts
        if flags & SYN:
            conn.role_guessed = False
            conn._client_side = side ^ 1 if flags & ACK else side
        else:
            # Ephemeral ports are high: the lower port is most likely the
            # server's; with equal ports, the receiver of this first packet.
            key = conn._key
            conn._client_side = side ^ 1 if key[2 + side] < key[3 - side] else side
        if self.max_connections and self._live >= self.max_connections and not self._evict_one():
            self._over_limit += 1
            handler = None
        else:
            handler = self._factory(conn)
        if handler is None:
            conn._state = _IGNORED
            self._ignored += 1
            self._table[conn._key] = _Tombstone(conn.stream, conn._base0, conn._base1, _IGNORED)
            return
        conn.handler = handler
        conn._on_data = handler.data
        conn._on_hole = handler.hole
        conn._state = _LIVE
        conn._r = (StreamReassembler(self.max_pending, self.verify_window, self.max_ack_wait),
                   StreamReassembler(self.max_pending, self.verify_window, self.max_ack_wait))
        if self.max_connections:
            self._live += 1
            evictable = self._evictable
            evictable.append(conn)
            if len(evictable) > 2 * self.max_connections:
                # Drop retired and data-carrying entries so the queue stays O(max_connections).
                self._evictable = deque([c for c in evictable if c._state == _LIVE and _idle(c)])

    def _evict_one(self) -> bool:
        """End the oldest live connection that has carried no payload; False if there is none."""
        evictable = self._evictable
        while evictable:
            conn = evictable.popleft()
            if conn._state == _LIVE and _idle(conn):
                self._evicted += 1
                self._end(conn, _CLOSED)
                return True
        return False

    def _packet_slow(self, conn, key, side, frame_no, ts, seq, ack, flags, payload, missing):
        if conn is None:
            conn = self._open(key)
        elif flags & (SYN | ACK) == SYN:
            conn = self._reopened(conn, key, side, seq)
        # Each side's initial sequence number: this side's from its SYN (or guessed from a
        # first packet without one), the peer's from what this side acknowledges.
        mine, peer = (conn._base1, conn._base0) if side else (conn._base0, conn._base1)
        if flags & (SYN | ACK) == SYN | ACK:
            mine = seq
        elif mine is None:
            mine = seq if flags & SYN else (seq - 1) & SEQ_MASK
        if flags & ACK and peer is None:
            peer = (ack - 1) & SEQ_MASK
        if side:
            conn._base1, conn._base0 = mine, peer
        else:
            conn._base0, conn._base1 = mine, peer
        if conn._state == _RESERVED:
            self._start(conn, side, frame_no, ts, flags)
        elif conn._state != _LIVE:
            if conn._state != _CLOSED or flags & (SYN | ACK) != SYN:
                return  # a tombstone
            # The same SYN after the end (Windows retries a refused connect with
            # it): still Wireshark's stream, but a connection to analyse afresh.
            tombstone = conn
            conn = Connection(self, key, tombstone.stream)
            conn._base0, conn._base1 = tombstone._base0, tombstone._base1
            self._table[key] = conn
            self._start(conn, side, frame_no, ts, flags)
        conn.last_frame = frame_no
        conn.last_time = ts
        if flags & SYN:
            if conn.syn_frame is None:
                conn.syn_frame = frame_no
                conn.syn_time = ts
            if conn.role_guessed:
                self._roles_from_syn(conn, side, flags)
        if conn._state != _LIVE:
            return  # the factory declined it
        r = conn._r
        if flags & ACK:
            peer = r[side ^ 1]
            if ack != peer._next_seq:
                chunks = peer.acked(ack, frame_no, ts)
                if chunks:
                    self._deliver(conn, side ^ 1, chunks)
                    if conn._state != _LIVE:
                        return
        if flags & RST:
            conn._rst = (side, frame_no, ts)
            self._end(conn, _CLOSED, frame_no, ts)
            return
        mine = r[side]
        if flags & SYN:
            mine.syn(seq)
            seq = (seq + 1) & SEQ_MASK
        if payload or missing:
            chunks = mine.segment(seq, payload, frame_no, ts, missing)
            if chunks:
                self._deliver(conn, side, chunks)
                if conn._state != _LIVE:
                    return
        if flags & FIN:
            mine.fin((seq + len(payload) + missing) & SEQ_MASK)
            if conn._fins is None:
                conn._fins = [None, None]
            if conn._fins[side] is None:
                conn._fins[side] = (frame_no, ts)
                conn._fin_wait |= 1 << side
        if conn._fin_wait:
            self._report_fins(conn)
            if conn._state != _LIVE:
                return
        if conn._fin_done == 3 and r[0].fin_acked and r[1].fin_acked:
            self._end(conn, _CLOSED, frame_no, ts)
            return
        # Closing (any FIN) and base-learning packets stay on this path.
        conn._fast = conn._fins is None and conn._base0 is not None and conn._base1 is not None

    def _reopened(self, conn, key, side, seq):
        """A SYN whose sequence number is not the one this side opened with: a new
        connection on the same 4-tuple (Wireshark: a new stream).  The connection to go on with."""
        base = conn._base1 if side else conn._base0
        if base is not None and seq != base:
            self._end(conn, _REPLACED)
            return self._open(key)
        return conn

    def _roles_from_syn(self, conn, side, flags) -> None:
        # Only while nothing was delivered: afterwards the handler may already
        # have decided the roles from content.
        client_side = side ^ 1 if flags & ACK else side
        r = conn._r
        if r is not None and (r[0].next_offset or r[1].next_offset or r[0].pending_bytes
                              or r[1].pending_bytes):
            return
        conn.role_guessed = False
        conn._client_side = client_side

    def _deliver(self, conn: Connection, side: int, chunks: Any) -> None:
        for data, frame_no, ts, hole in chunks:
            if conn._state != _LIVE:
                return
            direction = side ^ conn._client_side
            if data is not None:
                conn._on_data(direction, data, frame_no, ts)
            else:
                conn._on_hole(direction, hole, frame_no, ts)
        if conn._fin_wait and conn._state == _LIVE:
            self._report_fins(conn)

    def _report_fins(self, conn) -> None:
        r = conn._r
        for side in (0, 1):
            bit = 1 << side
            if conn._fin_wait & bit and r[side].fin_reached:
                conn._fin_wait &= ~bit
                conn._fin_done |= bit
                frame_no, ts = conn._fins[side]
                conn.handler.tcp_end("fin", side ^ conn._client_side, frame_no, ts)
                if conn._state != _LIVE:
                    return

    def _end(self, conn, state, frame_no=None, ts=None) -> None:
        """The connection is over: release what is buffered, then tell the handler.

        Holes found now are attributed to `frame_no` (the RST or final ACK), by
        default to the connection's last packet.
        """
        if conn._state != _LIVE:
            return
        if frame_no is None:
            frame_no, ts = conn.last_frame, conn.last_time
        for side in (0, 1):
            chunks = conn._r[side].flush(frame_no, ts)
            if chunks:
                self._deliver(conn, side, chunks)
            if conn._state != _LIVE:
                return  # ignored while flushing: abandon() was its last call
        if conn._fin_wait:
            self._report_fins(conn)
        handler = conn.handler
        if conn._state == _LIVE and conn._rst is not None:
            rst_side, rst_frame, rst_ts = conn._rst
            handler.tcp_end("rst", rst_side ^ conn._client_side, rst_frame, rst_ts)
        if conn._state == _LIVE:
            # finish() first: the handler may still read the reassemblers' counters.
            handler.finish()
            self._retire(conn, state)

    def _retire(self, conn, state) -> None:
        if self.max_connections and conn._state == _LIVE:
            self._live -= 1
        r = conn._r
        if r is not None:
            for reassembler in r:
                self._retransmissions += reassembler.retransmissions
                self._holes += reassembler.hole_count
                self._hole_bytes += reassembler.hole_bytes
                self._conflicts += reassembler.conflict_count
        conn._r = None
        conn.handler = None
        conn._on_data = conn._on_hole = None
        conn._fast = False
        conn._state = state
        if state != _REPLACED:
            self._table[conn._key] = _Tombstone(conn.stream, conn._base0, conn._base1, state)


def _stream_of(conn):
    return conn.stream


def _idle(conn) -> bool:
    """No payload byte delivered, pending or lost in either direction (a data-carrying
    connection never becomes idle again)."""
    r0, r1 = conn._r
    return not (r0.next_offset or r1.next_offset or r0.pending_bytes or r1.pending_bytes)
