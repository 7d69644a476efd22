"""TLS connection analysis: record framing, handshake facts and decryption, sans-I/O.

`TlsConnection.feed(direction, data, frame_no, ts)` takes each direction's reassembled TCP
bytes and returns events (see the package docstring).  Nothing here raises out of
feed()/hole()/finish(): malformed input, missing or wrong keys and lost bytes become
anomalies and `info` state.

How the two directions depend on each other: how to read the client's records after its
ClientHello depends on the ServerHello (version, suite), and the server's keys need the
ClientHello's random.  The caller should interleave directions in capture order, but when a
direction runs ahead of the hello it depends on, its records are held (copied, bounded) and
replayed once the hello arrives, so feeding all of one direction first still decrypts.
"""
from __future__ import annotations

from typing import Any, Optional

from . import crypto
from .hello import (ClientHello, ServerHello, parse_client_hello, parse_encrypted_extensions,
                    parse_server_hello)
from ..model import CLIENT, DIRECTION_NAMES, SERVER
from .keylog import KeyLog
from .records import MIN_SEALED_RECORD, Tls13Opener, open_at, tls12_openers
from .suites import CIPHER_SUITES, TLS13, suite_name, version_name


CT_CHANGE_CIPHER_SPEC, CT_ALERT, CT_HANDSHAKE, CT_APPLICATION_DATA, CT_HEARTBEAT = 20, 21, 22, 23, 24
HS_CLIENT_HELLO, HS_SERVER_HELLO = 1, 2
HS_ENCRYPTED_EXTENSIONS, HS_CERTIFICATE, HS_SERVER_HELLO_DONE = 8, 11, 14
HS_FINISHED, HS_KEY_UPDATE = 20, 24

# RFC 5246 §6.2.3: TLSCiphertext.length <= 2^14 + 2048 (TLS 1.3 is tighter; accept the larger).
MAX_RECORD_LENGTH = 16384 + 2048
MAX_HANDSHAKE_MESSAGE = 1 << 18  # certificate chains are tens of KB; more means we lost framing
HOLD_LIMIT = 1 << 20  # bytes of records kept while waiting for the other direction's hello
SCAN_LIMIT = 1 << 18  # bytes searched for a record boundary after a hole before giving up
RESYNC_MAX_TRIES = 4096  # sequence numbers tried per key after a hole (each a failed AEAD open)
EARLY_DATA_TOLERANCE = 64  # 0-RTT records that may fail to open before the client's handshake ones

_TLS13_SEALED_TYPES = frozenset((CT_APPLICATION_DATA,))  # 1.3: only opaque_type 23 is protected
_TLS12_SEALED_TYPES = frozenset((CT_ALERT, CT_HANDSHAKE, CT_APPLICATION_DATA))  # after CCS
_NOTHING_SEALED = frozenset()

_LABELS_TLS13 = (("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"),
                 ("SERVER_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0"))

# Decryption status per direction, worst first: the connection reports the worst.
_STATUS_ORDER = ("failed", "unsupported", "no-keys", "ok")


def looks_like_tls(data: bytes) -> bool:
    """Does `data` (the first bytes of a direction) start with a plausible TLS record?

    A record header (type 20-23, version 3.0-3.4, length 1..2^14+2048); a handshake record must
    open with a ClientHello or ServerHello, the only messages that can start a connection.
    """
    if len(data) < 5:
        return False
    content_type, major, minor = data[0], data[1], data[2]
    length = (data[3] << 8) | data[4]
    if not CT_CHANGE_CIPHER_SPEC <= content_type <= CT_APPLICATION_DATA or major != 3 or minor > 4:
        return False
    if not 0 < length <= MAX_RECORD_LENGTH:
        return False
    if content_type == CT_HANDSHAKE and len(data) > 5:
        if data[5] not in (HS_CLIENT_HELLO, HS_SERVER_HELLO):
            return False
        if len(data) > 9 and data[9] != 3:  # the hello's own legacy_version major
            return False
    return True


class _Direction:
    """Per-direction state: framing, keys, handshake reassembly, counters."""

    __slots__ = (
        "index", "name",
        # framing
        "partial", "fill", "skip", "scan", "scan_marks", "scan_from", "record_minor", "dead",
        "last_frame", "last_ts",
        # reading records
        "started", "sealed_types", "opener", "next_opener", "phase", "status",
        "hs_buffer", "held", "held_bytes", "resync", "lost_bytes", "lost_records",
        "early_data_tolerance", "early_data_skipped",
        # counters
        "records", "record_bytes", "app_bytes", "key_updates",
    )

    def __init__(self, index: int):
        self.index = index
        self.name = DIRECTION_NAMES[index]
        self.partial: Optional[bytearray] = None  # the record being assembled across chunks
        self.fill = 0  # bytes of `partial` filled so far
        self.skip = 0  # bytes still to discard: the rest of a record a hole damaged
        self.scan: Optional[bytearray] = None  # bytes searched for a record boundary after a hole
        self.scan_marks: list[tuple[int, Any, Any]] = []  # (end offset, frame, ts) of scanned chunks
        self.scan_from = 0
        self.record_minor: Optional[int] = None  # record-layer version minor last seen
        self.dead = False
        self.last_frame = None
        self.last_ts = None
        self.started = False  # the first record (hello or not) has been seen
        self.sealed_types = _NOTHING_SEALED  # content types whose records are ciphertext now
        self.opener = None  # decrypts the current epoch; None: can't (no keys / failed / not yet)
        self.next_opener = None  # the next epoch's (1.3 application keys, 1.2 keys before CCS)
        self.phase = "plaintext"  # plaintext | handshake | application
        self.status: Optional[str] = None  # ok | no-keys | failed | unsupported
        self.hs_buffer = bytearray()
        self.held: Optional[list] = None  # records waiting for the other direction's hello
        self.held_bytes = 0
        self.resync = False  # records went missing: on a failed open, search sequence numbers
        self.lost_bytes = 0
        self.lost_records = 0
        self.early_data_tolerance = 0
        self.early_data_skipped = 0
        self.records = 0
        self.record_bytes = 0
        self.app_bytes = 0
        self.key_updates = 0


class TlsConnection:
    def __init__(self, keylog: Optional[KeyLog] = None):
        self.keylog = keylog
        self._dirs = (_Direction(CLIENT), _Direction(SERVER))
        self._out: list = []
        self._client_hello: Optional[ClientHello] = None
        self._server_hello: Optional[ServerHello] = None
        self._version: Optional[int] = None
        self._server_certificate_seen = False
        self._midstream_reported = False
        self.client_hello_frame: Optional[int] = None  # where the SNI was read
        self._info: dict[str, Any] = {
            "version": None, "sni": None, "alpn_offered": [], "alpn": None,
            "cipher_suite": None, "cipher_suite_id": None, "resumed": False,
            "client_random": None, "server_random": None, "versions_offered": [],
            "hello_retry": False, "psk_offered": False, "early_data_offered": False,
            "decryption": None, "decryption_error": None,
            "decryption_by_direction": {"client": None, "server": None},
        }

    # ------------------------------------------------------------------ public API

    @property
    def info(self) -> dict[str, Any]:
        info = self._info
        c, s = self._dirs
        info["records"] = {"client": c.records, "server": s.records}
        info["record_bytes"] = {"client": c.record_bytes, "server": s.record_bytes}
        info["app_bytes"] = {"client": c.app_bytes, "server": s.app_bytes}
        info["key_updates"] = {"client": c.key_updates, "server": s.key_updates}
        return info

    def feed(self, direction: int, data, frame_no=None, ts=None) -> list:
        out = self._out = []
        try:
            d = self._dirs[direction]
            d.last_frame = frame_no
            d.last_ts = ts
            if data:
                self._split(d, data, frame_no, ts)
        except Exception as exc:  # a bug must cost this direction, not the whole analysis
            self._internal_error(direction, exc, frame_no, ts)
        return out

    def hole(self, direction: int, size: int, frame_no=None, ts=None) -> list:
        out = self._out = []
        try:
            d = self._dirs[direction]
            if size > 0 and not d.dead:
                self._hole(d, size, frame_no, ts)
        except Exception as exc:
            self._internal_error(direction, exc, frame_no, ts)
        return out

    def finish(self) -> list:
        out = self._out = []
        try:
            for d in self._dirs:
                if d.held is not None:
                    self._stop_waiting(d)
            for d in self._dirs:
                if d.scan is not None and not d.dead:
                    self._scan(d, b"", d.last_frame, d.last_ts, at_end=True)
            for d in self._dirs:
                if d.dead:
                    continue
                if d.scan is not None:
                    self._anomaly("tls-desync", d, d.last_frame, d.last_ts,
                                  reason="capture ended before a record boundary was found",
                                  scanned_bytes=len(d.scan))
                    self._stop_decrypting(d, "failed", f"{d.name} record framing lost at the end")
                    d.scan = None
                elif d.partial is not None:
                    self._anomaly("tls-truncated-record", d, d.last_frame, d.last_ts,
                                  have_bytes=d.fill,
                                  record_bytes=len(d.partial) if d.fill >= 5 else None)
                    d.partial = None
        except Exception as exc:
            self._internal_error(None, exc, None, None)
        return out

    # ------------------------------------------------------------------ framing

    def _split(self, d: _Direction, data, frame, ts) -> None:
        """Cut one chunk into records; only a record left incomplete at the end is copied."""
        if d.dead:
            return
        if d.scan is not None:
            self._scan(d, data, frame, ts)
            return
        mv = memoryview(data)
        end = len(mv)
        pos = 0
        if d.skip:
            if d.skip >= end:
                d.skip -= end
                return
            pos = d.skip
            d.skip = 0
        if d.partial is not None:
            pos = self._complete_partial(d, mv, pos, frame, ts)
            if pos < 0:
                return
        while end - pos >= 5:
            content_type = mv[pos]
            length = (mv[pos + 3] << 8) | mv[pos + 4]
            if (content_type < 20 or content_type > 24 or mv[pos + 1] != 3 or mv[pos + 2] > 4
                    or length > MAX_RECORD_LENGTH):
                self._framing_lost(d, mv, pos, frame, ts)
                return
            stop = pos + 5 + length
            if stop > end:
                break
            d.record_minor = mv[pos + 2]
            if d.held is None:
                self._on_record(d, mv[pos:stop], frame, ts)
            else:
                self._hold(d, bytes(mv[pos:stop]), frame, ts)
            if d.dead:
                return
            pos = stop
        if pos < end:
            rest = end - pos
            if rest >= 5:
                buf = bytearray(5 + ((mv[pos + 3] << 8) | mv[pos + 4]))
            else:
                buf = bytearray(5)
            buf[:rest] = mv[pos:]
            d.partial = buf
            d.fill = rest

    def _complete_partial(self, d: _Direction, mv: memoryview, pos: int, frame, ts) -> int:
        """Add bytes to the pending record; returns the position after it, or -1 if still short."""
        buf, fill, end = d.partial, d.fill, len(mv)
        if fill < 5:
            take = min(5 - fill, end - pos)
            buf[fill:fill + take] = mv[pos:pos + take]
            fill += take
            pos += take
            if fill < 5:
                d.fill = fill
                return -1
            length = (buf[3] << 8) | buf[4]
            if (buf[0] < 20 or buf[0] > 24 or buf[1] != 3 or buf[2] > 4
                    or length > MAX_RECORD_LENGTH):
                d.partial = None
                self._framing_lost(d, memoryview(bytes(buf) + bytes(mv[pos:])), 0, frame, ts)
                return -1
            full = bytearray(5 + length)
            full[:5] = buf
            buf = full
        take = min(len(buf) - fill, end - pos)
        buf[fill:fill + take] = mv[pos:pos + take]
        fill += take
        pos += take
        if fill < len(buf):
            d.partial = buf
            d.fill = fill
            return -1
        d.partial = None
        d.fill = 0
        d.record_minor = buf[2]
        if d.held is None:
            self._on_record(d, memoryview(buf), frame, ts)
        else:
            self._hold(d, buf, frame, ts)
        return -1 if d.dead else pos

    def _framing_lost(self, d: _Direction, mv: memoryview, pos: int, frame, ts) -> None:
        self._anomaly("tls-desync", d, frame, ts, reason="implausible record header",
                      header=bytes(mv[pos:pos + 5]).hex())
        self._start_scan(d, 0, frame, ts)
        self._scan(d, mv[pos:], frame, ts)

    def _hole(self, d: _Direction, size: int, frame, ts) -> None:
        if d.scan is not None:
            # Bytes before this hole can't be contiguous with what follows: restart the search.
            lost = len(d.scan) + size
            self._start_scan(d, lost, frame, ts)
            return
        if d.skip:
            if size <= d.skip:
                d.skip -= size
                return
            size -= d.skip
            d.skip = 0
            self._anomaly("tls-hole", d, frame, ts, size=size, in_sync=False)
            self._start_scan(d, size, frame, ts)
            return
        buf = d.partial
        if buf is not None and d.fill >= 5 and size <= len(buf) - d.fill:
            # The hole ends inside the record we were assembling: that record is lost but we
            # know where the next one starts, so framing survives.
            d.skip = len(buf) - d.fill - size
            d.partial = None
            self._anomaly("tls-hole", d, frame, ts, size=size, in_sync=True,
                          lost_record={"content_type": buf[0], "length": len(buf) - 5})
            self._gap(d, 0, 1, frame, ts)
            return
        lost = size + (d.fill if buf is not None else 0)
        d.partial = None
        self._anomaly("tls-hole", d, frame, ts, size=size, in_sync=False)
        self._start_scan(d, lost, frame, ts)

    def _start_scan(self, d: _Direction, lost_bytes: int, frame, ts) -> None:
        d.partial = None
        d.fill = 0
        d.scan = bytearray()
        d.scan_marks = []
        d.scan_from = 0
        # How many records the lost bytes held is unknown: only the byte count bounds the search.
        self._gap(d, lost_bytes, 0, frame, ts)

    def _scan(self, d: _Direction, data, frame, ts, at_end: bool = False) -> None:
        """Look for two chained plausible record headers (same version) in the bytes after a hole.

        At the end of the capture there may be no second header: a candidate whose record ends
        exactly where the bytes end is accepted then (AEAD authentication still has the last word).
        """
        buf = d.scan
        if data:
            buf += data
            d.scan_marks.append((len(buf), frame, ts))
        minor = d.record_minor
        i, n = d.scan_from, len(buf)
        found = -1
        while i + 5 <= n:
            if _plausible_header(buf, i, minor):
                j = i + 5 + ((buf[i + 3] << 8) | buf[i + 4])
                if at_end and j == n:
                    found = i
                    break
                if j + 5 > n:
                    if not at_end:
                        break  # can't confirm (or refute) this candidate until more bytes arrive
                elif _plausible_header(buf, j, minor):
                    found = i
                    break
            i += 1
        d.scan_from = i
        if found < 0:
            if n > SCAN_LIMIT:
                self._anomaly("tls-desync", d, frame, ts,
                              reason="no record boundary found after the hole", scanned_bytes=n)
                self._stop_decrypting(d, "failed", f"{d.name} record framing lost")
                d.scan = None
                d.dead = True
            return
        marks = d.scan_marks
        d.scan = None
        d.scan_marks = []
        self._anomaly("tls-resync", d, frame, ts, skipped_bytes=found)
        if found:
            self._gap(d, found, 0, frame, ts)
        # Replay each scanned chunk separately so records keep the frame that completed them.
        start = 0
        whole = memoryview(buf)
        for stop, chunk_frame, chunk_ts in marks:
            if d.dead:
                return
            if stop > found:
                self._split(d, whole[max(start, found):stop], chunk_frame, chunk_ts)
            start = stop

    # ------------------------------------------------------------------ record level

    def _hold(self, d: _Direction, record, frame, ts) -> None:
        d.held.append((record, frame, ts))
        d.held_bytes += len(record)
        if d.held_bytes > HOLD_LIMIT:
            self._stop_waiting(d)

    def _gap(self, d: _Direction, lost_bytes: int, lost_records: int, frame, ts) -> None:
        if d.held is not None:
            d.held.append((None, (lost_bytes, lost_records), frame, ts))
            return
        self._on_gap(d, lost_bytes, lost_records)

    def _on_gap(self, d: _Direction, lost_bytes: int, lost_records: int) -> None:
        d.hs_buffer.clear()  # a handshake message may have lost its middle
        d.lost_bytes += lost_bytes
        d.lost_records += lost_records
        d.resync = True

    def _release(self, d: _Direction) -> None:
        held, d.held, d.held_bytes = d.held, None, 0
        for item in held:
            if d.dead:
                return
            if item[0] is None:
                self._on_gap(d, *item[1])
            else:
                record, frame, ts = item
                self._on_record(d, memoryview(record), frame, ts)

    def _stop_waiting(self, d: _Direction) -> None:
        waiting_for = "ServerHello" if d.index == CLIENT else "ClientHello"
        self._anomaly("tls-handshake-incomplete", d, d.last_frame, d.last_ts,
                      waiting_for=waiting_for, held_records=len(d.held))
        if self._info["decryption_error"] is None:
            self._info["decryption_error"] = f"no {waiting_for} in the capture"
        self._release(d)

    def _on_record(self, d: _Direction, record: memoryview, frame, ts) -> None:
        content_type = record[0]
        length = len(record) - 5
        d.records += 1
        d.record_bytes += length
        out = self._out
        out.append(("record", d.index, content_type, length, frame, ts))
        if content_type in d.sealed_types:
            opener = d.opener
            if opener is None:
                if d.next_opener is not None and d.phase == "handshake":
                    self._probe_next_epoch(d, record, frame, ts)
                return
            try:
                inner_type, plain = opener.open(record)
            except crypto.InvalidTag:
                self._open_failed(d, record, frame, ts)
                return
            if d.resync:
                self._resynced(d, 0, frame, ts)
            if inner_type == CT_APPLICATION_DATA:
                if plain:
                    d.app_bytes += len(plain)
                    out.append(("plaintext", d.index, plain, frame, ts))
                return
            self._on_content(d, inner_type, plain, frame, ts)
            return
        self._on_content(d, content_type, record[5:], frame, ts)

    def _open_failed(self, d: _Direction, record: memoryview, frame, ts) -> None:
        if d.resync:
            opened = self._search_after_gap(d, record, frame, ts)
            if opened is not None:
                self._on_opened(d, opened[0], opened[1], frame, ts)
                return
            self._anomaly("tls-desync", d, frame, ts,
                          reason="no sequence number opens the first record after the hole",
                          lost_bytes=d.lost_bytes)
            self._stop_decrypting(d, "failed", f"{d.name} decryption lost after missing bytes")
            return
        if d.early_data_tolerance > 0 and d.phase == "handshake":
            # 0-RTT records the server rejected (or we have no early secret for) precede the
            # client's handshake-key records and can't open with them.
            d.early_data_tolerance -= 1
            d.early_data_skipped += 1
            if d.early_data_skipped == 1:
                self._anomaly("tls-early-data-skipped", d, frame, ts)
            return
        self._anomaly("tls-bad-record-mac", d, frame, ts, sequence=d.opener.seq, phase=d.phase,
                      length=len(record) - 5, cipher_suite=self._info["cipher_suite"])
        self._stop_decrypting(
            d, "failed", f"{d.name} record {d.opener.seq} ({d.phase}) failed authentication: "
                         "the key log's secret does not match this connection")

    def _search_after_gap(self, d: _Direction, record: memoryview, frame, ts):
        """After lost bytes: which sequence number (and, mid-handshake, which epoch) opens this?"""
        opener = d.opener
        base = opener.seq + d.lost_records
        span = min(d.lost_bytes // MIN_SEALED_RECORD + d.lost_records + 2, RESYNC_MAX_TRIES)
        candidates = [(opener, base)]
        if d.phase == "handshake" and d.next_opener is not None:
            candidates.append((d.next_opener, 0))  # the lost record may have carried Finished
        for candidate, first in candidates:
            guesses = range(first, first + span)
            hinted = candidate.explicit_seq(record)
            if hinted is not None and hinted >= first:
                guesses = [hinted, *guesses]
            for seq in guesses:
                try:
                    opened = open_at(candidate, record, seq)
                except crypto.InvalidTag:
                    continue
                if candidate is not opener:
                    d.opener, d.next_opener, d.phase = candidate, None, "application"
                self._resynced(d, seq - first, frame, ts)
                return opened
        return None

    def _resynced(self, d: _Direction, skipped_records: int, frame, ts) -> None:
        if skipped_records:
            self._anomaly("tls-records-skipped", d, frame, ts, records=skipped_records)
        d.resync = False
        d.lost_bytes = 0
        d.lost_records = 0

    def _probe_next_epoch(self, d: _Direction, record: memoryview, frame, ts) -> None:
        # The key log has the application secret but not the handshake one: the first record
        # the application key opens (as number 0) is the first application record.
        try:
            opened = open_at(d.next_opener, record, 0)
        except crypto.InvalidTag:
            return
        d.opener, d.next_opener, d.phase = d.next_opener, None, "application"
        self._on_opened(d, opened[0], opened[1], frame, ts)

    def _on_opened(self, d: _Direction, inner_type: int, plain: bytes, frame, ts) -> None:
        if inner_type == CT_APPLICATION_DATA:
            if plain:
                d.app_bytes += len(plain)
                self._out.append(("plaintext", d.index, plain, frame, ts))
            return
        self._on_content(d, inner_type, plain, frame, ts)

    def _on_content(self, d: _Direction, content_type: int, payload, frame, ts) -> None:
        """A readable record body: plaintext on the wire, or decrypted."""
        if not d.started:
            d.started = True
            if not self._starts_connection(d, content_type, payload):
                self._midstream(d, frame, ts)
                if content_type in d.sealed_types:
                    return
        if content_type == CT_HANDSHAKE:
            self._on_handshake_bytes(d, payload, frame, ts)
        elif content_type == CT_ALERT:
            self._on_alert(d, payload, frame, ts)
        elif content_type == CT_CHANGE_CIPHER_SPEC:
            self._on_change_cipher_spec(d, frame, ts)
        elif content_type == CT_APPLICATION_DATA or content_type == CT_HEARTBEAT:
            pass  # application data with no protection we know of: opaque
        else:
            self._anomaly("tls-unexpected-content-type", d, frame, ts, content_type=content_type)

    def _starts_connection(self, d: _Direction, content_type: int, payload) -> bool:
        if content_type == CT_HANDSHAKE and len(payload) > 0:
            return payload[0] == (HS_CLIENT_HELLO if d.index == CLIENT else HS_SERVER_HELLO)
        return content_type == CT_ALERT and len(payload) == 2  # e.g. a plaintext refusal

    def _midstream(self, d: _Direction, frame, ts) -> None:
        # Without the hello the record protection is unknown: treat everything but CCS as
        # ciphertext rather than misparse encrypted handshake records.
        d.sealed_types = _TLS12_SEALED_TYPES
        if not self._midstream_reported:
            self._midstream_reported = True
            self._anomaly("tls-no-handshake", d, frame, ts)
            if self._info["decryption_error"] is None:
                self._info["decryption_error"] = "the TLS handshake is not in the capture"

    # ------------------------------------------------------------------ content

    def _on_alert(self, d: _Direction, payload, frame, ts) -> None:
        if len(payload) % 2 or not payload:
            self._anomaly("tls-bad-alert", d, frame, ts, length=len(payload))
        out = self._out
        for i in range(0, len(payload) - 1, 2):
            level, description = payload[i], payload[i + 1]
            out.append(("alert", d.index, level, description, frame, ts))
            if description == 0:
                out.append(("close_notify", d.index, frame, ts))

    def _on_change_cipher_spec(self, d: _Direction, frame, ts) -> None:
        version = self._version
        if version == 0x0304:
            return  # middlebox-compatibility CCS (RFC 8446 D.4): means nothing
        if d.sealed_types is _TLS12_SEALED_TYPES and d.opener is not None:
            self._anomaly("tls-renegotiation", d, frame, ts)
            self._stop_decrypting(d, "unsupported", "renegotiation is not followed")
            return
        d.sealed_types = _TLS12_SEALED_TYPES
        d.opener, d.next_opener = d.next_opener, None
        d.phase = "application"
        if d.index == SERVER and self._server_hello is not None and not self._server_certificate_seen:
            self._info["resumed"] = True  # abbreviated handshake: CCS right after ServerHello

    def _on_handshake_bytes(self, d: _Direction, payload, frame, ts) -> None:
        buf = d.hs_buffer
        buf += payload
        while len(buf) >= 4:
            length = (buf[1] << 16) | (buf[2] << 8) | buf[3]
            if length > MAX_HANDSHAKE_MESSAGE:
                self._anomaly("tls-bad-handshake", d, frame, ts, message_type=buf[0],
                              error=f"handshake message length {length}")
                buf.clear()
                return
            if len(buf) < 4 + length:
                return
            msg_type = buf[0]
            body = bytes(buf[4:4 + length])
            del buf[:4 + length]
            self._on_handshake_message(d, msg_type, body, frame, ts)

    def _on_handshake_message(self, d: _Direction, msg_type: int, body: bytes, frame, ts) -> None:
        if msg_type == HS_FINISHED:
            self._on_finished(d, frame, ts)
        elif msg_type == HS_KEY_UPDATE:
            self._on_key_update(d)
        elif d.index == CLIENT:
            if msg_type == HS_CLIENT_HELLO:
                self._on_client_hello(d, body, frame, ts)
        elif msg_type == HS_SERVER_HELLO:
            self._on_server_hello(d, body, frame, ts)
        elif msg_type == HS_ENCRYPTED_EXTENSIONS:
            self._on_encrypted_extensions(d, body, frame, ts)
        elif msg_type in (HS_CERTIFICATE, HS_SERVER_HELLO_DONE):
            self._server_certificate_seen = True

    def _on_client_hello(self, d: _Direction, body: bytes, frame, ts) -> None:
        if self._client_hello is not None:
            return  # the second ClientHello after a HelloRetryRequest keeps the same random
        hello = self._parse_handshake(parse_client_hello, HS_CLIENT_HELLO, d, body, frame, ts)
        if hello is None:
            return
        self._client_hello = hello
        self.client_hello_frame = frame
        info = self._info
        info["sni"] = hello.sni
        info["alpn_offered"] = list(hello.alpn)
        info["client_random"] = hello.random.hex()
        info["versions_offered"] = [version_name(v) for v in
                                    (hello.supported_versions or [hello.legacy_version])
                                    if v & 0x0F0F != 0x0A0A]
        info["psk_offered"] = hello.psk_offered
        info["early_data_offered"] = hello.early_data
        if self._server_hello is None:
            d.held = []  # how to read what follows depends on the ServerHello
        else:
            self._setup_decryption(frame, ts)

    def _parse_handshake(self, parse, message_type: int, d: _Direction, body: bytes, frame, ts):
        """parse(body), or None after a tls-bad-handshake anomaly when it cannot be parsed."""
        try:
            return parse(body)
        except ValueError as exc:
            self._anomaly("tls-bad-handshake", d, frame, ts, message_type=message_type,
                          error=str(exc))
            return None

    def _on_server_hello(self, d: _Direction, body: bytes, frame, ts) -> None:
        hello = self._parse_handshake(parse_server_hello, HS_SERVER_HELLO, d, body, frame, ts)
        if hello is None:
            return
        self._version = hello.version
        if hello.hello_retry:
            self._info["hello_retry"] = True
            self._info["version"] = version_name(hello.version)
            return
        if self._server_hello is not None:
            return
        self._server_hello = hello
        info = self._info
        info["version"] = version_name(hello.version)
        info["cipher_suite_id"] = hello.cipher_suite
        info["cipher_suite"] = suite_name(hello.cipher_suite)
        info["server_random"] = hello.random.hex()
        if hello.version != 0x0304:
            info["alpn"] = hello.alpn
        if self._client_hello is None:
            d.held = []  # the keys need the client random
            self._emit_handshake()
            return
        self._setup_decryption(frame, ts)

    def _on_encrypted_extensions(self, d: _Direction, body: bytes, frame, ts) -> None:
        extensions = self._parse_handshake(parse_encrypted_extensions, HS_ENCRYPTED_EXTENSIONS, d, body, frame, ts)
        if extensions is None:
            return
        self._info["alpn"] = extensions.alpn
        self._info["early_data_accepted"] = extensions.early_data_accepted
        self._emit_handshake()

    def _on_finished(self, d: _Direction, frame, ts) -> None:
        if self._version != 0x0304 or d.phase != "handshake":
            return  # TLS 1.2: Finished is the first sealed record; keys already switched at CCS
        # RFC 8446 §5.1: Finished ends its record, so the switch lands on a record boundary.
        d.opener, d.next_opener, d.phase = d.next_opener, None, "application"
        d.early_data_tolerance = 0
        if d.opener is None and d.status == "ok":
            label = _LABELS_TLS13[d.index][1]
            self._anomaly("tls-no-keys", d, frame, ts, missing=label)
            self._stop_decrypting(d, "no-keys", f"the key log has no {label}")

    def _on_key_update(self, d: _Direction) -> None:
        if self._version != 0x0304 or d.phase != "application":
            return
        d.key_updates += 1
        if d.opener is not None:
            d.opener = d.opener.next_generation()

    # ------------------------------------------------------------------ keys

    def _setup_decryption(self, frame, ts) -> None:
        client_hello, server_hello = self._client_hello, self._server_hello
        version = server_hello.version
        client, server = self._dirs
        info = self._info
        if version == 0x0304:
            info["resumed"] = server_hello.psk_accepted
            for d in self._dirs:
                d.sealed_types = _TLS13_SEALED_TYPES
                d.phase = "handshake"
        else:
            info["resumed"] = info["resumed"] or bool(
                server_hello.session_id and server_hello.session_id == client_hello.session_id)
        suite = CIPHER_SUITES.get(server_hello.cipher_suite)
        if self.keylog is None:
            self._set_status("no-keys", "no key log given")
            self._anomaly("tls-no-keys", None, frame, ts, reason="no key log")
        elif suite is None or not suite.decryptable(version):
            self._set_status("unsupported",
                             f"{info['cipher_suite']} with {info['version']} is not decryptable "
                             "(AEAD suites of TLS 1.2/1.3 only)")
            self._anomaly("tls-unsupported-cipher", None, frame, ts,
                          cipher_suite=info["cipher_suite"], cipher_suite_id=server_hello.cipher_suite,
                          version=info["version"])
        else:
            secrets = self.keylog.secrets(client_hello.random)
            if not secrets:
                self._set_status("no-keys", "the key log has no entry for this client random")
                self._anomaly("tls-no-keys", None, frame, ts,
                              reason="client random not in key log",
                              client_random=client_hello.random.hex())
            elif suite.protection == TLS13:
                self._setup_tls13(suite, secrets, frame, ts)
            else:
                self._setup_tls12(suite, secrets, frame, ts)
        self._emit_handshake()
        for d in (client, server):
            if d.held is not None:
                self._release(d)

    def _setup_tls13(self, suite, secrets: dict, frame, ts) -> None:
        missing = []
        for d in self._dirs:
            handshake_label, application_label = _LABELS_TLS13[d.index]
            handshake_secret = secrets.get(handshake_label)
            application_secret = secrets.get(application_label)
            d.opener = Tls13Opener(suite, handshake_secret) if handshake_secret else None
            d.next_opener = Tls13Opener(suite, application_secret) if application_secret else None
            if d.opener is None and d.next_opener is None:
                d.status = "no-keys"
                missing.append(application_label)
            else:
                d.status = "ok"
        if self._client_hello.early_data:
            self._dirs[CLIENT].early_data_tolerance = EARLY_DATA_TOLERANCE
        if missing:
            self._anomaly("tls-no-keys", None, frame, ts, missing=missing)
        self._update_decryption_info(f"the key log has no {', '.join(missing)}" if missing else None)

    def _setup_tls12(self, suite, secrets: dict, frame, ts) -> None:
        master_secret = secrets.get("CLIENT_RANDOM")
        if master_secret is None:
            self._set_status("no-keys", "the key log has no CLIENT_RANDOM (master secret) line")
            self._anomaly("tls-no-keys", None, frame, ts, missing=["CLIENT_RANDOM"])
            return
        client, server = self._dirs
        client.next_opener, server.next_opener = tls12_openers(
            suite, master_secret, self._client_hello.random, self._server_hello.random)
        client.status = server.status = "ok"
        self._update_decryption_info(None)

    def _set_status(self, status: str, error: Optional[str]) -> None:
        for d in self._dirs:
            d.status = status
            d.opener = d.next_opener = None
        self._update_decryption_info(error)

    def _stop_decrypting(self, d: _Direction, status: str, error: str) -> None:
        was_decrypting = d.status == "ok"
        d.opener = d.next_opener = None
        d.resync = False
        if was_decrypting:
            d.status = status
            self._update_decryption_info(error)

    def _update_decryption_info(self, error: Optional[str]) -> None:
        info = self._info
        statuses = [d.status for d in self._dirs]
        info["decryption_by_direction"] = {"client": statuses[0], "server": statuses[1]}
        overall = None
        for status in _STATUS_ORDER:
            if status in statuses:
                overall = status
                break
        if overall == "ok" and None in statuses:
            overall = None
        info["decryption"] = overall
        if error is not None and (info["decryption_error"] is None or overall != "ok"):
            info["decryption_error"] = error

    # ------------------------------------------------------------------ events

    def _emit_handshake(self) -> None:
        snapshot = {k: (v.copy() if isinstance(v, (dict, list)) else v) for k, v in self.info.items()}
        self._out.append(("handshake", snapshot))

    def _anomaly(self, kind: str, d: Optional[_Direction], frame, ts, **detail) -> None:
        self._out.append(("anomaly", kind, None if d is None else d.index, frame, ts, detail))

    def _internal_error(self, direction, exc: Exception, frame, ts) -> None:
        if direction in (CLIENT, SERVER):
            d = self._dirs[direction]
            d.dead = True
            d.partial = d.scan = None
            if d.status == "ok":
                d.status = "failed"
                self._update_decryption_info(f"internal error: {exc!r}")
        self._out.append(("anomaly", "tls-internal-error",
                          direction if direction in (CLIENT, SERVER) else None, frame, ts,
                          {"error": repr(exc)}))


def _plausible_header(buf, i: int, minor: Optional[int]) -> bool:
    content_type = buf[i]
    if content_type < CT_CHANGE_CIPHER_SPEC or content_type > CT_APPLICATION_DATA or buf[i + 1] != 3:
        return False
    if (buf[i + 2] != minor) if minor is not None else buf[i + 2] > 4:
        return False
    length = (buf[i + 3] << 8) | buf[i + 4]
    return 0 < length <= MAX_RECORD_LENGTH
