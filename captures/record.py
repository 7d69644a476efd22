#!/usr/bin/env python3
"""Record dgcap's sample captures from real loopback connections.

    python captures/record.py                 # every scenario
    python captures/record.py --only dg_success --only dg_401
    python captures/record.py --list

For each scenario: start a capture on `lo` (tcpdump -> .pcap, dumpcap -> .pcapng) filtered
on the scenario's own port, wait until it is really capturing, run a local Deepgram-like
server (fake_deepgram.py, websockets) and a REAL websockets client in a child process,
stop the capture cleanly, then compute `<name>.expected.json` from an independent oracle
(tshark's dissection of the written file, see oracle.py) and cross-check it against what
the client and server say they did.  Needs root (or capture capabilities), tcpdump,
dumpcap, tshark, editcap, Python 3.10+ with websockets>=13 and cryptography.
Loopback only: 127.0.0.1 and ::1.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import math
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fake_deepgram as fdg  # noqa: E402
import oracle  # noqa: E402

API_KEY = fdg.API_KEY
GAP_THRESHOLD = 10.0
RATE = 16000
BPS = RATE * 2  # linear16 mono bytes per second
CHUNK = 3200  # 100 ms
LISTEN_QUERY = {"model": "nova-3", "encoding": "linear16", "sample_rate": "16000"}
FLUX_QUERY = {"model": "flux-general-en", "encoding": "linear16", "sample_rate": "16000"}

SUITE_NAMES = {
    "0x1301": "TLS_AES_128_GCM_SHA256", "0x1302": "TLS_AES_256_GCM_SHA384",
    "0x1303": "TLS_CHACHA20_POLY1305_SHA256",
    "0xc030": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "0xcca8": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}


# ====================================================================== audio
def make_audio(seconds: float, rate: int = RATE) -> bytes:
    """Deterministic linear16 mono: a 440 Hz tone with a slow 0.5 Hz tremolo."""
    n = int(seconds * rate)
    return b"".join(
        struct.pack("<h", int(round(9000 * (0.6 + 0.4 * math.sin(2 * math.pi * 0.5 * i / rate))
                                    * math.sin(2 * math.pi * 440 * i / rate))))
        for i in range(n))


AUDIO = make_audio(12.0)


def make_wav(seconds: float) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(AUDIO[:int(seconds * BPS)])
    return buf.getvalue()


# ====================================================================== scenarios
@dataclass
class Scenario:
    name: str
    port: int
    description: str
    run: Callable[["Ctx"], Awaitable[None]]
    fmt: str = "pcap"  # pcap (tcpdump) | pcapng (dumpcap)
    host: str = "127.0.0.1"
    server: str = "fake"  # fake | raw
    deflate: bool = False
    tls: Optional[dict] = None  # {"version": "TLSv1.3"|"TLSv1.2", "suite": IANA name, ...}
    embed_secrets: bool = False  # pcapng with the key log injected (editcap)
    mirrors: Optional[str] = None
    # What the session(s) must show (checked against the oracle, in tcp_stream order).
    expect: list[dict] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.fmt}"


SCENARIOS: dict[str, Scenario] = {}


def scenario(**kw):
    def deco(fn):
        sc = Scenario(run=fn, **kw)
        SCENARIOS[sc.name] = sc
        return fn
    return deco


# ---------------------------------------------------------------------- child-side context
class Ctx:
    def __init__(self, sc: Scenario, workdir: str):
        self.sc = sc
        self.workdir = workdir
        self.clients: list["Client"] = []
        self.cafile: Optional[str] = None
        self.dg: Optional[fdg.FakeDeepgram] = None
        self.raw: Optional[fdg.RawFragmentServer] = None

    def client(self, **kw) -> "Client":
        c = Client(self, **kw)
        self.clients.append(c)
        return c

    def ssl_context(self) -> Optional[ssl.SSLContext]:
        if not self.sc.tls:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.cafile)
        ctx.keylog_filename = os.path.join(self.workdir, "keys.log")
        if self.sc.tls["version"] == "TLSv1.2":
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(self.sc.tls["openssl"])
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        return ctx


class Client:
    """A real websockets client with a background reader and send bookkeeping."""

    def __init__(self, ctx: Ctx, path: str = "/v1/listen", query: Optional[dict] = None,
                 auth: Optional[str] = "Token " + API_KEY, compression: Optional[str] = None):
        self.ctx = ctx
        self.path = path
        self.query = LISTEN_QUERY if query is None else query
        self.auth = auth
        self.compression = compression
        self.ws = None
        self.reader: Optional[asyncio.Task] = None
        self.received: list[Any] = []
        self.sent = {"text": 0, "binary": 0, "empty_binary": 0, "payload_bytes": 0}
        self.audio_pos = 0
        self.status: Optional[int] = None
        self.error: Optional[str] = None
        self.aborted = False

    def uri(self) -> str:
        from urllib.parse import urlencode
        sc = self.ctx.sc
        if sc.tls:
            host = "localhost"
        elif ":" in sc.host:
            host = f"[{sc.host}]"
        else:
            host = sc.host
        qs = ("?" + urlencode(self.query)) if self.query else ""
        return f"{'wss' if sc.tls else 'ws'}://{host}:{sc.port}{self.path}{qs}"

    async def open(self) -> bool:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus
        headers = {"Authorization": self.auth} if self.auth is not None else {}
        kw: dict[str, Any] = dict(additional_headers=headers, compression=self.compression,
                                  ping_interval=None, close_timeout=5, open_timeout=10,
                                  max_size=2**22)
        if self.ctx.sc.tls:
            kw["ssl"] = self.ctx.ssl_context()
            kw["host"] = self.ctx.sc.host  # connect to 127.0.0.1, SNI/Host "localhost"
        try:
            self.ws = await connect(self.uri(), **kw)
        except InvalidStatus as e:
            self.status = e.response.status_code
            self.error = e.response.headers.get("dg-error")
            return False
        self.status = 101
        self.reader = asyncio.create_task(self._read())
        return True

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed
        try:
            async for m in self.ws:
                self.received.append(m)
        except ConnectionClosed:
            pass

    async def send_text(self, obj: Any) -> None:
        data = obj if isinstance(obj, str) else json.dumps(obj)
        await self.ws.send(data)
        self.sent["text"] += 1
        self.sent["payload_bytes"] += len(data.encode())

    async def send_binary(self, data: bytes) -> None:
        await self.ws.send(data)
        self.sent["binary"] += 1
        if not data:
            self.sent["empty_binary"] += 1
        self.sent["payload_bytes"] += len(data)

    async def stream(self, seconds: float, speed: float = 1.0, chunk: int = CHUNK,
                     source: Optional[bytes] = None) -> None:
        """Send `seconds` of audio in `chunk`-byte frames, paced at `speed` x real time."""
        loop = asyncio.get_running_loop()
        src = AUDIO if source is None else source
        n = int(round(seconds * BPS / chunk))
        interval = chunk / BPS / speed
        t0 = loop.time()
        for i in range(n):
            data = src[self.audio_pos:self.audio_pos + chunk]
            if not data:
                break
            self.audio_pos += len(data)
            await self.send_binary(data)
            await asyncio.sleep(max(0.0, t0 + (i + 1) * interval - loop.time()))

    async def closed(self, timeout: float = 20.0) -> None:
        """Wait until the connection is closed (by either side)."""
        if self.reader is not None:
            await asyncio.wait_for(asyncio.shield(self.reader), timeout)
        if self.ws is not None and not self.aborted:
            await asyncio.wait_for(self.ws.wait_closed(), timeout)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)
        await self.closed()

    def abort_with_rst(self) -> None:
        sock = self.ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.aborted = True
        self.ws.transport.abort()

    def facts(self) -> dict:
        out: dict[str, Any] = {"status": self.status, "dg_error": self.error,
                               "sent": self.sent}
        if self.ws is not None:
            p = self.ws.protocol
            out["close_sent"] = [p.close_sent.code, p.close_sent.reason] if p.close_sent else None
            out["close_rcvd"] = [p.close_rcvd.code, p.close_rcvd.reason] if p.close_rcvd else None
            out["received"] = [m if isinstance(m, str) else len(m) for m in self.received]
        return out


# ---------------------------------------------------------------------- message patterns
async def success_pattern(c: Client) -> None:
    """dg_success's pattern: KeepAlive, 1.5 s audio, Finalize, 1.5 s audio, CloseStream."""
    assert await c.open()
    await c.send_text({"type": "KeepAlive"})
    await asyncio.sleep(0.2)
    await c.stream(1.5)
    await c.send_text({"type": "Finalize"})
    await asyncio.sleep(0.2)
    await c.stream(1.5)
    await c.send_text({"type": "CloseStream"})
    await c.closed()


async def net0001_pattern(c: Client) -> None:
    """~1 s of audio, then silence until the server closes with 1011 NET-0001."""
    assert await c.open()
    await c.stream(1.0)
    await c.closed(timeout=20)


SUCCESS_EXPECT = [{"websocket": True, "findings": [], "close": ["server", 1000, 1000],
                   "tcp_end": "fin", "server_texts": ["Results", "Metadata"]}]
NET0001_EXPECT = [{"websocket": True, "findings": ["audio-gap", "client-gap"],
                   "close": ["server", 1011, 1011], "tcp_end": "fin",
                   "server_close_reason": fdg.NET0001_REASON}]


@scenario(name="dg_success", port=18001, expect=SUCCESS_EXPECT,
          description="Healthy /v1/listen session: KeepAlive, 1.5 s audio, Finalize, 1.5 s "
                      "audio, CloseStream -> final Results, Metadata, close 1000 both ways, "
                      "server FIN first.")
async def s_success(ctx: Ctx) -> None:
    await success_pattern(ctx.client())


@scenario(name="dg_401", port=18002,
          expect=[{"websocket": False, "findings": ["handshake-failed"], "status": 401,
                   "tcp_end": "fin"}],
          description="Authorization header without the 'Token ' prefix -> HTTP 401 with "
                      "dg-error 'Invalid credentials.', dg-request-id and a JSON body "
                      "(INVALID_AUTH); no WebSocket.")
async def s_401(ctx: Ctx) -> None:
    c = ctx.client(auth=API_KEY)  # the classic mistake: key without the "Token " scheme
    assert not await c.open()


@scenario(name="dg_400", port=18003,
          expect=[{"websocket": False, "findings": ["handshake-failed"], "status": 400,
                   "tcp_end": "fin"}],
          description="language=english -> HTTP 400 'No such model/language/tier combination "
                      "found.' (dg-error + JSON body); no WebSocket.")
async def s_400(ctx: Ctx) -> None:
    c = ctx.client(query={"model": "nova-3", "language": "english", "encoding": "linear16",
                          "sample_rate": "16000"})
    assert not await c.open()


@scenario(name="dg_net0001", port=18004, expect=NET0001_EXPECT,
          description="1 s of audio, then the client goes silent; 10 s later the server "
                      "closes 1011 NET-0001 and the client echoes the close.")
async def s_net0001(ctx: Ctx) -> None:
    await net0001_pattern(ctx.client())


@scenario(name="dg_silence_7s", port=18005,
          expect=[{"websocket": True, "findings": [], "close": ["server", 1000, 1000],
                   "tcp_end": "fin"}],
          description="1.5 s audio, 7 s with no client frame at all, 1.5 s audio, "
                      "CloseStream: below the 10 s threshold, no gap finding.")
async def s_silence(ctx: Ctx) -> None:
    c = ctx.client()
    assert await c.open()
    await c.stream(1.5)
    await asyncio.sleep(7.0)
    await c.stream(1.5)
    await c.send_text({"type": "CloseStream"})
    await c.closed()


@scenario(name="dg_empty_binary", port=18006,
          expect=[{"websocket": True, "findings": ["empty-binary-frame"],
                   "close": ["server", 1000, 1000], "tcp_end": "fin",
                   "server_texts": ["Results", "Metadata"]}],
          description="2.5 s audio, then send(b'') (an empty binary frame): the server "
                      "treats it as end of stream -> final Results, Metadata, close 1000.")
async def s_empty(ctx: Ctx) -> None:
    c = ctx.client()
    assert await c.open()
    await c.stream(2.5)
    await c.send_binary(b"")
    await c.closed()


@scenario(name="dg_data0000", port=18007,
          expect=[{"websocket": True, "findings": [], "close": ["server", 1008, 1008],
                   "tcp_end": "fin", "server_close_reason": fdg.DATA0000_REASON}],
          description="A JSON document sent as a BINARY frame instead of audio -> the "
                      "server closes 1008 DATA-0000.")
async def s_data0000(ctx: Ctx) -> None:
    c = ctx.client()
    assert await c.open()
    await c.send_binary(json.dumps({"type": "Audio", "format": "base64",
                                    "data": "UklGRiQAAABXQVZFZm10IBAAAAABAAEAgD4AAAB9AAACABAA"
                                    }).encode())
    await c.closed()


@scenario(name="dg_rst", port=18008,
          expect=[{"websocket": True, "findings": ["abnormal-closure"], "close": [None, None, None],
                   "tcp_end": "rst", "tcp_end_by": "client"}],
          description="2.5 s audio, then the client aborts the TCP connection with RST "
                      "(SO_LINGER 0): no close frame from either side.")
async def s_rst(ctx: Ctx) -> None:
    c = ctx.client()
    assert await c.open()
    await c.stream(2.5)
    await asyncio.sleep(0.2)
    c.abort_with_rst()
    await asyncio.sleep(0.5)


@scenario(name="dg_ipv6", port=18009, host="::1", expect=SUCCESS_EXPECT, mirrors="dg_success",
          description="dg_success's pattern over IPv6 loopback ([::1]).")
async def s_ipv6(ctx: Ctx) -> None:
    await success_pattern(ctx.client())


@scenario(name="dg_deflate", port=18010, deflate=True,
          expect=[{"websocket": True, "findings": [], "close": ["server", 1000, 1000],
                   "tcp_end": "fin", "compressed": True,
                   "server_texts": ["Results", "Metadata"]}],
          description="permessage-deflate negotiated (websockets' default offer, server "
                      "accepts): KeepAlive, 2 s audio, Finalize, CloseStream; every data "
                      "frame is compressed (RSV1) both ways; close 1000.")
async def s_deflate(ctx: Ctx) -> None:
    c = ctx.client(compression="deflate")
    assert await c.open()
    await c.send_text({"type": "KeepAlive"})
    await asyncio.sleep(0.2)
    await c.stream(2.0)
    await c.send_text({"type": "Finalize"})
    await asyncio.sleep(0.2)
    await c.send_text({"type": "CloseStream"})
    await c.closed()


@scenario(name="ws_fragmented_ping", port=18011, server="raw",
          expect=[{"websocket": True, "findings": [], "close": ["client", 1000, 1000],
                   "tcp_end": "fin"}],
          description="Hand-written server sends a text message in 3 fragments (text FIN=0, "
                      "continuation FIN=0, continuation FIN=1) with a ping between the first "
                      "two; the websockets client answers pong, then closes 1000.")
async def s_fragmented(ctx: Ctx) -> None:
    c = ctx.client(path="/ws", query={})
    assert await c.open()
    for _ in range(100):
        if c.received:
            break
        await asyncio.sleep(0.05)
    assert c.received == ["Hello, fragmented world"], c.received
    await asyncio.sleep(0.2)
    await c.close(1000, "done")


@scenario(name="dg_multi", port=18012, fmt="pcapng",
          expect=[{"websocket": True, "findings": [], "close": ["server", 1000, 1000],
                   "tcp_end": "fin"},
                  {"websocket": False, "findings": ["handshake-failed"], "status": 401,
                   "tcp_end": "fin"},
                  {"websocket": True, "findings": ["empty-binary-frame"],
                   "close": ["server", 1000, 1000], "tcp_end": "fin"}],
          description="Three sessions in one pcapng (dumpcap): a success (stream 0), a 401 "
                      "with a wrong key while it runs (stream 1), and a concurrent session "
                      "ending with an empty binary frame (stream 2).")
async def s_multi(ctx: Ctx) -> None:
    a = ctx.client()
    b = ctx.client(auth="Token dgtest_ffffffffffffffffffffffffffffffff")
    c = ctx.client()

    async def run_b() -> None:
        await asyncio.sleep(0.5)
        assert not await b.open()

    async def run_c() -> None:
        await asyncio.sleep(1.0)
        assert await c.open()
        await c.stream(1.5)
        await c.send_binary(b"")
        await c.closed()

    await asyncio.gather(success_pattern(a), run_b(), run_c())


@scenario(name="dg_keepalive_only", port=18013,
          expect=[{"websocket": True, "findings": ["audio-gap"], "close": ["server", 1011, 1011],
                   "tcp_end": "fin", "server_close_reason": fdg.NET0001_REASON}],
          description="KeepAlive (text) every 3 s and never any audio: the server still "
                      "closes 1011 NET-0001 10 s after the 101 (KeepAlive alone does not hold "
                      "the stream); audio gap but no client gap.")
async def s_keepalive_only(ctx: Ctx) -> None:
    c = ctx.client()
    assert await c.open()
    while True:
        await c.send_text({"type": "KeepAlive"})
        try:
            await asyncio.wait_for(asyncio.shield(c.reader), 3.0)
            break
        except asyncio.TimeoutError:
            continue
    await c.closed()


@scenario(name="dg_wait_for_server", port=18014,
          expect=[{"websocket": True, "findings": ["audio-gap", "client-gap"],
                   "close": ["server", 1011, 1011], "tcp_end": "fin",
                   "server_close_reason": fdg.NET0001_REASON}],
          description="The client opens and waits for a server message before sending "
                      "audio; the server sends nothing, so NET-0001 (1011) arrives 10 s after "
                      "the 101 with no client data frame at all.")
async def s_wait(ctx: Ctx) -> None:
    c = ctx.client()
    assert await c.open()
    await c.closed(timeout=20)  # "wait for the first transcript before streaming"
    assert not c.received


@scenario(name="dg_wav_container", port=18015,
          expect=[{"websocket": True, "findings": [], "close": ["server", 1000, 1000],
                   "tcp_end": "fin"}],
          description="A WAV file (RIFF/WAVE header + 2.5 s PCM) streamed in 3200-byte "
                      "chunks with encoding=linear16&sample_rate=16000 (container plus "
                      "encoding: a misconfiguration), then CloseStream.")
async def s_wav(ctx: Ctx) -> None:
    c = ctx.client()
    assert await c.open()
    wav = make_wav(2.5)
    await c.stream(len(wav) / BPS + 0.1, source=wav)
    await c.send_text({"type": "CloseStream"})
    await c.closed()


@scenario(name="dg_fast_1_5x", port=18016,
          expect=[{"websocket": True, "findings": [], "close": ["server", 1000, 1000],
                   "tcp_end": "fin"}],
          description="4 s of linear16 audio paced at 1.5x real time (100 ms chunks every "
                      "66.7 ms), then CloseStream.")
async def s_fast(ctx: Ctx) -> None:
    c = ctx.client()
    assert await c.open()
    await c.stream(4.0, speed=1.5)
    await c.send_text({"type": "CloseStream"})
    await c.closed()


@scenario(name="dg_no_closestream", port=18017,
          expect=[{"websocket": True, "findings": [], "close": ["client", 1000, 1000],
                   "tcp_end": "fin"}],
          description="2.5 s audio, then the client sends a close frame 1000 without "
                      "CloseStream: no final Results/Metadata for the last half second.")
async def s_no_closestream(ctx: Ctx) -> None:
    c = ctx.client()
    assert await c.open()
    await c.stream(2.5)
    await c.close(1000)


@scenario(name="dg_keepalive_binary", port=18018,
          expect=[{"websocket": True, "findings": [], "close": ["server", 1000, 1000],
                   "tcp_end": "fin"}],
          description="1 s audio, then {\"type\":\"KeepAlive\"} sent in BINARY frames every "
                      "2 s (3 times, treated as audio by the server), 1 s audio, CloseStream.")
async def s_keepalive_binary(ctx: Ctx) -> None:
    c = ctx.client()
    assert await c.open()
    await c.stream(1.0)
    for _ in range(3):
        await asyncio.sleep(2.0)
        await c.send_binary(json.dumps({"type": "KeepAlive"}).encode())
    await asyncio.sleep(1.0)
    await c.stream(1.0)
    await c.send_text({"type": "CloseStream"})
    await c.closed()


@scenario(name="tts_speak", port=18019,
          expect=[{"websocket": True, "findings": [], "close": ["server", 1000, 1000],
                   "tcp_end": "fin", "server_texts": ["Metadata", "Flushed"]}],
          description="/v1/speak (TTS): Speak, Flush -> Metadata, binary audio chunks, "
                      "Flushed; then Close -> close 1000.")
async def s_tts(ctx: Ctx) -> None:
    c = ctx.client(path="/v1/speak", query={"model": "aura-2-thalia-en",
                                            "encoding": "linear16", "sample_rate": "24000"})
    assert await c.open()
    await c.send_text({"type": "Speak", "text": "Hello from the local Deepgram speak endpoint."})
    await c.send_text({"type": "Flush"})
    for _ in range(200):
        if any(isinstance(m, str) and '"Flushed"' in m for m in c.received):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    await c.send_text({"type": "Close"})
    await c.closed()


@scenario(name="flux_listen", port=18020,
          expect=[{"websocket": True, "findings": [], "close": ["server", None, None],
                   "tcp_end": "fin", "server_texts": ["Connected", "TurnInfo"]}],
          description="/v2/listen with model=flux-general-en: Connected on open, 2.4 s of "
                      "audio in 80 ms chunks -> TurnInfo (StartOfTurn, Update...), "
                      "CloseStream -> a last Update (no EndOfTurn, no Metadata) and a close "
                      "frame without status code (dg:/docs/flux/close-stream).")
async def s_flux(ctx: Ctx) -> None:
    c = ctx.client(path="/v2/listen", query=FLUX_QUERY)
    assert await c.open()
    await c.stream(2.4, chunk=2560)
    await c.send_text({"type": "CloseStream"})
    await c.closed()


async def wait_for_text(c: Client, kind: str, count: int = 1, timeout: float = 10.0) -> None:
    """Until the client has received `count` text messages of type `kind`."""
    for _ in range(int(timeout / 0.05)):
        if sum(1 for m in c.received if isinstance(m, str) and f'"type":"{kind}"' in m) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} within {timeout} s: {c.received[-3:]}")

# The Voice Agent Settings of agent_normal, with a provider credential in every place the
# protocol reference lists (think/speak endpoint.headers, functions[].endpoint.headers,
# user:pass@ in a function URL, AWS credentials).  All of them are test values; none may
# appear in a dgcap report (tests/test_secrets_leak.py).
PROVIDER_SECRETS = {
    "think authorization": "sk-test-0123456789abcdefghijklmnop",
    "function x-goog-api-key": "AIzaTest0123456789abcdefghijklmnop",
    "function URL password": "fnpass_5a6b7c8d9e0f",
    "speak xi-api-key": "xi_test_0123456789abcdef0123",
    "aws access_key_id": "AKIATEST0123456789AB",
    "aws secret_access_key": "awsSecretTest0123456789abcdefghijklmnopq",
    "speak x-api-key": "sk_car_test0123456789abcdef",
}
CALLBACK_PASSWORD = "cbpass_7f3e9a1c5b2d"
CALLBACK_TOKEN = "cbtok_0123456789abcdef"


def agent_settings(input_rate: int = RATE) -> dict:
    p = PROVIDER_SECRETS
    return {
        "type": "Settings",
        "audio": {"input": {"encoding": "linear16", "sample_rate": input_rate},
                  "output": {"encoding": "linear16", "sample_rate": 24000, "container": "none"}},
        "agent": {
            "language": "en",
            "listen": {"provider": {"type": "deepgram", "model": "nova-3"}},
            "think": {
                "provider": {"type": "open_ai", "model": "gpt-4o-mini"},
                "endpoint": {"url": "https://llm.example.com/v1/chat/completions",
                             "headers": {"authorization": f"Bearer {p['think authorization']}"}},
                "prompt": "You are a test agent.",
                "functions": [{
                    "name": "lookup", "description": "Look something up.",
                    "parameters": {"type": "object", "properties": {}},
                    "endpoint": {"url": f"https://fnuser:{p['function URL password']}"
                                        "@functions.example.com/lookup", "method": "post",
                                 "headers": {"x-goog-api-key": p["function x-goog-api-key"]}}}]},
            "speak": [
                {"provider": {"type": "eleven_labs", "model_id": "eleven_turbo_v2_5",
                              "voice_id": "test"},
                 "endpoint": {"url": "wss://api.elevenlabs.io/v1/text-to-speech/test/"
                                     "multi-stream-input",
                              "headers": {"xi-api-key": p["speak xi-api-key"]}}},
                {"provider": {"type": "aws_polly", "voice": "Matthew", "language_code": "en-US",
                              "engine": "standard",
                              "credentials": {"type": "IAM", "region": "us-east-1",
                                              "access_key_id": p["aws access_key_id"],
                                              "secret_access_key": p["aws secret_access_key"]}}},
                {"provider": {"type": "cartesia", "model_id": "sonic-2",
                              "voice": {"mode": "id", "id": "test"}},
                 "endpoint": {"url": "https://api.cartesia.ai/tts/bytes",
                              "headers": {"x-api-key": p["speak x-api-key"]}}}]}}


@scenario(name="flux_keepalive_json", port=18027,
          expect=[{"websocket": True, "findings": [], "close": ["server", None, None],
                   "tcp_end": "fin", "server_texts": ["Connected", "TurnInfo"]}],
          description="/v2/listen (Flux): 1 s of audio in 80 ms chunks, then a JSON "
                      "{\"type\":\"KeepAlive\"} (Flux has no KeepAlive message): the server "
                      "kills the socket with a close frame without status (1005 in clients, "
                      "as users saw, py#649).")
async def s_flux_keepalive(ctx: Ctx) -> None:
    c = ctx.client(path="/v2/listen", query=FLUX_QUERY)
    assert await c.open()
    await c.stream(1.2, chunk=2560)
    await c.send_text({"type": "KeepAlive"})
    await c.closed()


@scenario(name="tts_mp3_400", port=18028,
          expect=[{"websocket": False, "findings": ["handshake-failed"], "status": 400,
                   "tcp_end": "fin"}],
          description="/v1/speak?encoding=mp3&sample_rate=44100: the text-to-speech WebSocket "
                      "takes linear16, mulaw and alaw only -> HTTP 400 INVALID_QUERY_PARAMETER "
                      "with a {category, message, details, request_id} body.")
async def s_tts_mp3(ctx: Ctx) -> None:
    c = ctx.client(path="/v1/speak", query={"model": "aura-2-thalia-en", "encoding": "mp3",
                                            "sample_rate": "44100"})
    assert not await c.open()


@scenario(name="tts_flush_limit", port=18029,
          expect=[{"websocket": True, "findings": [], "close": ["server", 1000, 1000],
                   "tcp_end": "fin", "server_texts": ["Metadata", "Flushed", "Warning"]}],
          description="/v1/speak: 22 Speak+Flush pairs within a few seconds (the limit is 20 "
                      "Flush per 60 s): Flushed 20 times, then two Warning {warn_code: "
                      "EXCESSIVE_FLUSH, warn_msg} as sent on the wire; Close -> close 1000.")
async def s_tts_flush(ctx: Ctx) -> None:
    c = ctx.client(path="/v1/speak", query={"model": "aura-2-thalia-en",
                                            "encoding": "linear16", "sample_rate": "8000"})
    assert await c.open()
    for i in range(22):
        await c.send_text({"type": "Speak", "text": f"Hi {i}."})
        await c.send_text({"type": "Flush"})
        await asyncio.sleep(0.05)
    await wait_for_text(c, "Warning", 2)
    await wait_for_text(c, "Flushed", 20)
    await c.send_text({"type": "Close"})
    await c.closed()


@scenario(name="speak_v2", port=18030,
          expect=[{"websocket": True, "findings": [], "close": ["server", 1000, 1000],
                   "tcp_end": "fin",
                   "server_texts": ["Connected", "SpeechStarted", "SpeechMetadata", "Flushed",
                                    "SessionMetadata"]}],
          description="/v2/speak (Flux TTS): Connected at once; Speak, Flush -> SpeechStarted, "
                      "audio, SpeechMetadata, Flushed; Speak, Close -> SpeechStarted, audio, "
                      "SpeechMetadata, Flushed, SessionMetadata, close 1000.")
async def s_speak_v2(ctx: Ctx) -> None:
    c = ctx.client(path="/v2/speak", query={"model": "flux-thalia-en", "encoding": "linear16",
                                            "sample_rate": "16000"})
    assert await c.open()
    await wait_for_text(c, "Connected")
    await c.send_text({"type": "Speak", "text": "Hello from Flux."})
    await c.send_text({"type": "Flush"})
    await wait_for_text(c, "Flushed")
    await c.send_text({"type": "Speak", "text": "Bye."})
    await c.send_text({"type": "Close"})
    await c.closed()


@scenario(name="agent_normal", port=18031,
          expect=[{"websocket": True, "findings": [], "close": ["client", 1000, 1000],
                   "tcp_end": "fin",
                   "server_texts": ["Welcome", "SettingsApplied", "ConversationText",
                                    "AgentAudioDone", "LatencyReport"]}],
          description="Voice Agent: Welcome at once; Settings with provider credentials in "
                      "every place the reference lists -> SettingsApplied; 2 s of audio -> a "
                      "turn (UserStartedSpeaking ... AgentAudioDone, LatencyReport); KeepAlive; "
                      "the client closes 1000.")
async def s_agent(ctx: Ctx) -> None:
    c = ctx.client(path="/v1/agent/converse", query={})
    assert await c.open()
    await wait_for_text(c, "Welcome")
    await c.send_text(agent_settings())
    await wait_for_text(c, "SettingsApplied")
    await c.stream(2.0)
    await wait_for_text(c, "LatencyReport")
    await c.send_text({"type": "KeepAlive"})
    await asyncio.sleep(0.3)
    await c.close(1000)


@scenario(name="agent_audio_before_settings", port=18032,
          expect=[{"websocket": True, "findings": [], "close": ["server", 1000, 1000],
                   "tcp_end": "fin", "server_texts": ["Welcome", "Error"]}],
          description="Voice Agent: the client streams audio right after the 101 without "
                      "sending Settings -> Error NON_SETTINGS_MESSAGE_BEFORE_SETTINGS, then the "
                      "server closes (1000 here; the real close code is unconfirmed).")
async def s_agent_early_audio(ctx: Ctx) -> None:
    c = ctx.client(path="/v1/agent/converse", query={})
    assert await c.open()
    await wait_for_text(c, "Welcome")
    await c.send_binary(AUDIO[:CHUNK])
    await c.closed()


@scenario(name="dg_configure", port=18033,
          expect=[{"websocket": True, "findings": [], "close": ["server", 1000, 1000],
                   "tcp_end": "fin", "server_texts": ["Results", "ConfigureSuccess", "Metadata"]}],
          description="/v1/listen nova-3 with keyterm: 1 s audio, Configure {keyterms} -> "
                      "ConfigureSuccess {request_id, keyterms} (the reply every Configure gets "
                      "since 2026-10-19), 1 s audio, CloseStream -> Metadata, close 1000.")
async def s_configure(ctx: Ctx) -> None:
    c = ctx.client(query={**LISTEN_QUERY, "keyterm": "dgcap"})
    assert await c.open()
    await c.stream(1.0)
    await c.send_text({"type": "Configure", "keyterms": ["dgcap", "loopback"],
                       "features": {"numerals": True}})
    await wait_for_text(c, "ConfigureSuccess")
    await c.stream(1.0)
    await c.send_text({"type": "CloseStream"})
    await c.closed()


@scenario(name="dg_callback_credentials", port=18034, expect=SUCCESS_EXPECT,
          description="dg_success's pattern with callback=https://cbuser:<password>@hooks."
                      "example.com/dg?token=<token>: a callback URL carrying credentials (both "
                      "must be redacted in every output).")
async def s_callback(ctx: Ctx) -> None:
    await success_pattern(ctx.client(query={
        **LISTEN_QUERY, "callback": f"https://cbuser:{CALLBACK_PASSWORD}@hooks.example.com/dg"
                                    f"?token={CALLBACK_TOKEN}"}))


# ---------------------------------------------------------------------- TLS twins
def _tls_success(name: str, port: int, tls: dict, desc: str, fmt: str = "pcap",
                 embed: bool = False) -> None:
    async def run(ctx: Ctx) -> None:
        await success_pattern(ctx.client())
    SCENARIOS[name] = Scenario(name=name, port=port, description=desc, run=run, tls=tls,
                               fmt=fmt, embed_secrets=embed, mirrors="dg_success",
                               expect=SUCCESS_EXPECT)


_tls_success("tls13_aes128_success", 18021,
             {"version": "TLSv1.3", "suite": "TLS_AES_128_GCM_SHA256",
              "ciphersuites": "TLS_AES_128_GCM_SHA256"},
             "dg_success's pattern over TLS 1.3 with TLS_AES_128_GCM_SHA256; key log in "
             "tls13_aes128_success.keys.")
_tls_success("tls13_chacha20_success", 18022,
             {"version": "TLSv1.3", "suite": "TLS_CHACHA20_POLY1305_SHA256",
              "ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"},
             "dg_success's pattern over TLS 1.3 with TLS_CHACHA20_POLY1305_SHA256; key log "
             "in tls13_chacha20_success.keys.")
_tls_success("tls12_aes256gcm_success", 18023,
             {"version": "TLSv1.2", "suite": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
              "openssl": "ECDHE-RSA-AES256-GCM-SHA384"},
             "dg_success's pattern over TLS 1.2 with ECDHE-RSA-AES256-GCM-SHA384; key log "
             "in tls12_aes256gcm_success.keys.")
_tls_success("tls12_chacha20_success", 18024,
             {"version": "TLSv1.2", "suite": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
              "openssl": "ECDHE-RSA-CHACHA20-POLY1305"},
             "dg_success's pattern over TLS 1.2 with ECDHE-RSA-CHACHA20-POLY1305; key log "
             "in tls12_chacha20_success.keys.")
_tls_success("tls13_embedded_secrets", 18026,
             {"version": "TLSv1.3", "suite": "TLS_AES_256_GCM_SHA384",
              "ciphersuites": "TLS_AES_256_GCM_SHA384"},
             "dg_success's pattern over TLS 1.3 (TLS_AES_256_GCM_SHA384) in a pcapng whose "
             "key log is embedded (editcap --inject-secrets tls,...): decrypts without a "
             "key-log file.", fmt="pcapng", embed=True)


@scenario(name="tls13_net0001", port=18025, mirrors="dg_net0001", expect=NET0001_EXPECT,
          tls={"version": "TLSv1.3", "suite": "TLS_AES_256_GCM_SHA384",
               "ciphersuites": "TLS_AES_256_GCM_SHA384"},
          description="dg_net0001 over TLS 1.3 (TLS_AES_256_GCM_SHA384): 1 s audio, silence, "
                      "1011 NET-0001 after 10 s; key log in tls13_net0001.keys.")
async def s_tls_net0001(ctx: Ctx) -> None:
    await net0001_pattern(ctx.client())


@scenario(name="tls13_multi", port=18041,
          tls={"version": "TLSv1.3", "suite": "TLS_AES_128_GCM_SHA256",
               "ciphersuites": "TLS_AES_128_GCM_SHA256"},
          expect=[SUCCESS_EXPECT[0],
                  {"websocket": True, "findings": ["empty-binary-frame"],
                   "close": ["server", 1000, 1000], "tcp_end": "fin"},
                  {"websocket": True, "findings": [], "close": ["server", 1008, 1008],
                   "tcp_end": "fin", "server_close_reason": fdg.DATA0000_REASON}],
          description="Three concurrent sessions over TLS 1.3 (TLS_AES_128_GCM_SHA256), one "
                      "key log for all (tls13_multi.keys): dg_success's pattern (stream 0); "
                      "1 s audio then an empty binary frame (stream 1); a JSON document sent "
                      "as binary -> close 1008 DATA-0000 (stream 2).  For `dgcap extract`: "
                      "one session's packets and secrets must not decrypt another's.")
async def s_tls_multi(ctx: Ctx) -> None:
    a, b, c = ctx.client(), ctx.client(), ctx.client()

    async def run_b() -> None:
        await asyncio.sleep(0.5)
        assert await b.open()
        await b.stream(1.0)
        await b.send_binary(b"")
        await b.closed()

    async def run_c() -> None:
        await asyncio.sleep(1.0)
        assert await c.open()
        await c.send_binary(json.dumps({"type": "Audio", "data": "UklGRiQAAABXQVZF"}).encode())
        await c.closed()

    await asyncio.gather(success_pattern(a), run_b(), run_c())


# ====================================================================== child process
async def child_main(name: str, workdir: str) -> dict:
    sc = SCENARIOS[name]
    ctx = Ctx(sc, workdir)
    server_ctx = None
    if sc.tls:
        cert, key = fdg.make_self_signed(workdir)
        ctx.cafile = cert
        server_ctx = fdg.server_ssl_context(cert, key)
    ids = fdg.RequestIds(base=sc.port)
    facts: dict[str, Any] = {}
    if sc.server == "raw":
        ctx.raw = fdg.RawFragmentServer(request_id=ids.next())
        srv = await ctx.raw.start(sc.host, sc.port)
        async with srv:
            await sc.run(ctx)
            await asyncio.sleep(0.3)
        facts["server"] = [{"request_id": ctx.raw.request_id, "status": 101,
                            "close_sent": ctx.raw.facts["client_close"], **ctx.raw.facts}]
    else:
        ctx.dg = fdg.FakeDeepgram(request_ids=ids)
        async with ctx.dg.serve(sc.host, sc.port, ssl_context=server_ctx,
                                compression="deflate" if sc.deflate else None):
            await sc.run(ctx)
            await asyncio.sleep(0.3)
        facts["server"] = ctx.dg.connections
    facts["clients"] = [c.facts() for c in ctx.clients]
    return facts


# ====================================================================== capture control
class Capture:
    def __init__(self, fmt: str, port: int, path: str):
        self.fmt, self.port, self.path = fmt, port, path
        self.proc: Optional[subprocess.Popen] = None
        self.stderr: list[str] = []

    def start(self) -> "Capture":
        filt = f"tcp port {self.port}"
        if self.fmt == "pcap":
            cmd = ["tcpdump", "-i", "lo", "-n", "-U", "-s", "0", "-w", self.path, filt]
            ready = "listening on"
        else:
            cmd = ["dumpcap", "-i", "lo", "-f", filt, "-w", self.path]
            ready = "Capturing on"
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        got = threading.Event()

        def drain() -> None:
            for line in self.proc.stderr:
                self.stderr.append(line.rstrip())
                if ready in line:
                    got.set()
        self.thread = threading.Thread(target=drain, daemon=True)
        self.thread.start()
        if not got.wait(15):
            self.proc.kill()
            raise RuntimeError(f"{cmd[0]} did not start: {self.stderr}")
        # The capture is open and filtering; make sure the file header is on disk too.
        deadline = time.time() + 5
        while time.time() < deadline and (not os.path.exists(self.path)
                                           or os.path.getsize(self.path) == 0):
            time.sleep(0.05)
        time.sleep(0.5)
        return self

    def stop(self) -> None:
        time.sleep(0.7)  # let the last ACKs through
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(5)
        self.thread.join(5)
        text = "\n".join(self.stderr)
        m = re.search(r"(\d+) packets? dropped by kernel", text) or \
            re.search(r"Packets received/dropped on interface '[^']*': \d+/(\d+)", text)
        if m is None or int(m.group(1)) != 0:
            raise RuntimeError(f"capture may be incomplete: {text}")
        # tcpdump drops privileges to its own user; dumpcap writes 0600: normalise.
        os.chown(self.path, os.getuid(), os.getgid())
        os.chmod(self.path, 0o644)


# ====================================================================== expectations
def build_expected(sc: Scenario, path: str, keylog: Optional[str], facts: dict) -> dict:
    raw = oracle.run_tshark(path, sc.port, tls=bool(sc.tls), keylog=keylog)
    pkts = oracle.simplify(raw)
    sessions = oracle.sessions_from_packets(pkts, GAP_THRESHOLD)
    problems = cross_check(sc, sessions, facts)
    exp: dict[str, Any] = {
        "capture": os.path.basename(path), "format": sc.fmt,
        "packets": oracle.count_packets(path), "description": sc.description,
    }
    if sc.tls:
        if not sc.embed_secrets:
            exp["keylog"] = os.path.basename(keylog)
            exp["use_keylog"] = True  # tests pass <name>.keys to dgcap
        infos = oracle.tls_info(path, keylog, sc.port)
        for i in infos:
            i["cipher_suite"] = SUITE_NAMES.get(i["cipher_suite_id"], i["cipher_suite_id"])
            if i["version"] != sc.tls["version"] or i["cipher_suite"] != sc.tls["suite"]:
                problems.append(f"TLS negotiated {i}, wanted {sc.tls}")
        exp["tls"] = infos
    if sc.mirrors:
        exp["mirrors"] = sc.mirrors
    exp["oracle"] = f"{oracle.tshark_version()} + captures/oracle.py"
    # What the endpoints say they did (not dgcap output; for Deepgram-layer tests).
    exp["scenario"] = {"port": sc.port, "sessions": [
        {"request_id": srv.get("request_id"), "status": srv.get("status"),
         "path": srv.get("path"), "server_close": srv.get("close_sent"),
         "audio_bytes_received": srv.get("audio_bytes"), "audio_sha256": srv.get("sha256"),
         "client_sent": c["sent"]}
        for srv, c in zip(facts["server"], facts["clients"])]}
    exp["sessions"] = [session_expectation(sc, s) for s in sessions]
    if problems:
        raise AssertionError(f"{sc.name}: " + "; ".join(problems))
    return exp


def session_expectation(sc: Scenario, s: dict) -> dict:
    transport = "tls-decrypted" if sc.tls else "tcp"
    hs = s["handshake"]
    h = {k: hs.get(k) for k in ("status", "reason", "method", "path", "query",
                                 "request_frame", "response_frame", "dg_request_id",
                                 "dg_error")}
    if s["websocket"]:
        h["accept_valid"] = hs["accept_valid"]
        h["extensions"] = hs["extensions"]
    else:
        h["body"] = hs.get("body")
    findings = s["_findings"]
    absent = [f for f in oracle.GENERIC_FINDINGS if f not in findings]
    if not s["websocket"]:
        # Not a WebSocket: whether a "no close frame" finding applies is not defined.
        absent = [f for f in absent if f != "abnormal-closure"]
    return {
        "client": s["client"], "server": s["server"], "tcp_stream": s["tcp_stream"],
        "transport": transport, "websocket": s["websocket"], "midstream": False,
        "handshake": h,
        "frames": s["frames"],
        "close": s["close"],
        "gaps": s["gaps"],
        "findings": findings,
        "absent_findings": absent,
    }


def cross_check(sc: Scenario, sessions: list[dict], facts: dict) -> list[str]:
    """The oracle's view must agree with what the client and the server did."""
    bad: list[str] = []
    clients, servers = facts["clients"], facts["server"]
    if len(sessions) != len(clients):
        return [f"{len(sessions)} TCP streams in the capture, {len(clients)} clients ran"]
    if len(sessions) != len(sc.expect):
        bad.append(f"{len(sessions)} sessions, scenario expects {len(sc.expect)}")
    for i, (s, c, srv, want) in enumerate(zip(sessions, clients, servers, sc.expect)):
        tag = f"session {i}"
        first = s["_packets"][0]
        if not (first["syn"] and not first["ack"]):
            bad.append(f"{tag}: the capture missed the start of the TCP stream")
        hs = s["handshake"]
        if hs.get("status") != c["status"] or hs.get("status") != srv["status"]:
            bad.append(f"{tag}: status oracle={hs.get('status')} client={c['status']} "
                       f"server={srv['status']}")
        if hs.get("dg_request_id") != srv["request_id"]:
            bad.append(f"{tag}: dg-request-id {hs.get('dg_request_id')} != {srv['request_id']}")
        if "status" in want and want["status"] != hs.get("status"):
            bad.append(f"{tag}: status {hs.get('status')} != {want['status']}")
        if s["websocket"] != want["websocket"]:
            bad.append(f"{tag}: websocket={s['websocket']}")
        if s["_findings"] != sorted(want["findings"]):
            bad.append(f"{tag}: findings {s['_findings']} != {sorted(want['findings'])}")
        cl = s["close"]
        if cl["tcp_end"] != want["tcp_end"]:
            bad.append(f"{tag}: tcp_end {cl['tcp_end']} != {want['tcp_end']}")
        if len(s["_tcp_end_kinds"]) > 1:
            bad.append(f"{tag}: mixed FIN and RST {s['_tcp_end_kinds']}")
        if "tcp_end_by" in want and cl["tcp_end_by"] != want["tcp_end_by"]:
            bad.append(f"{tag}: tcp_end_by {cl['tcp_end_by']}")
        if "close" in want:
            init, ccode, scode = want["close"]
            got = (cl["initiator"], cl["client"] and cl["client"]["code"],
                   cl["server"] and cl["server"]["code"])
            if got != (init, ccode, scode):
                bad.append(f"{tag}: close {got} != {(init, ccode, scode)}")
        if "server_close_reason" in want and (cl["server"] or {}).get("reason") \
                != want["server_close_reason"]:
            bad.append(f"{tag}: server close reason {cl['server']}")
        if srv.get("close_sent") and cl["server"] and sc.server != "raw":
            if [cl["server"]["code"], cl["server"]["reason"]] != srv["close_sent"]:
                bad.append(f"{tag}: server close on wire {cl['server']} != {srv['close_sent']}")
        fc = s["frames"]["client"]
        sent = c["sent"]
        for k in ("text", "binary", "empty_binary"):
            if fc[k] != sent[k]:
                bad.append(f"{tag}: client {k} frames oracle={fc[k]} client={sent[k]}")
        if not want.get("compressed") and s["websocket"]:
            data_bytes = sum(f["len"] for f in s["_frames"]
                             if f["dir"] == "client" and f["opcode"] in (0, 1, 2))
            if data_bytes != sent["payload_bytes"]:
                bad.append(f"{tag}: client data payload bytes oracle={data_bytes} "
                           f"client={sent['payload_bytes']}")
        if s["websocket"]:
            # every server message the client got is visible to tshark, same count
            fs = s["frames"]["server"]
            n_msgs = fs["text"] + fs["binary"]
            if n_msgs != len(c.get("received", [])):
                bad.append(f"{tag}: server data messages oracle={n_msgs} "
                           f"client received={len(c.get('received', []))}")
            texts = [f["text"] for f in s["_frames"] if f["dir"] == "server" and f["opcode"] == 1]
            for t in want.get("server_texts", []):
                if not any(x and f'"type":"{t}"' in x for x in texts):
                    bad.append(f"{tag}: tshark shows no server {t} text message")
            for f in s["_frames"]:
                if f["opcode"] in (1, 2) and bool(f["rsv"] & 4) != bool(want.get("compressed")):
                    bad.append(f"{tag}: frame {f['no']} RSV1={f['rsv'] & 4}")
                    break
    return bad


# ====================================================================== orchestration
def openssl_conf(workdir: str, ciphersuites: str) -> str:
    path = os.path.join(workdir, "openssl.cnf")
    with open(path, "w") as f:
        f.write("openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n"
                "[ssl_sect]\nsystem_default = system_default_sect\n"
                f"[system_default_sect]\nCiphersuites = {ciphersuites}\n")
    return path


def record(sc: Scenario, outdir: str, verbose: bool = True) -> dict:
    t0 = time.time()
    workdir = tempfile.mkdtemp(prefix=f"dgrec-{sc.name}-")
    final_path = os.path.join(outdir, sc.filename)
    cap_path = os.path.join(workdir, f"{sc.name}.pcap") if sc.embed_secrets else final_path
    cap_fmt = "pcap" if sc.embed_secrets else sc.fmt
    env = dict(os.environ)
    if sc.tls and sc.tls.get("ciphersuites"):
        env["OPENSSL_CONF"] = openssl_conf(workdir, sc.tls["ciphersuites"])
    cap = Capture(cap_fmt, sc.port, cap_path).start()
    try:
        res = subprocess.run([sys.executable, os.path.abspath(__file__), "--_child", sc.name,
                              "--_workdir", workdir], env=env, capture_output=True, text=True,
                             timeout=120)
    finally:
        cap.stop()
    if res.returncode != 0:
        raise RuntimeError(f"{sc.name}: scenario failed:\n{res.stdout}\n{res.stderr}")
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("FACTS "))
    facts = json.loads(line[6:])
    keylog = None
    if sc.tls:
        src_keys = os.path.join(workdir, "keys.log")
        if sc.embed_secrets:
            r = subprocess.run(["editcap", "--inject-secrets", f"tls,{src_keys}", cap_path,
                                final_path], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"editcap failed: {r.stderr}")
        else:
            keylog = os.path.join(outdir, f"{sc.name}.keys")
            shutil.copyfile(src_keys, keylog)
    exp = build_expected(sc, final_path, keylog, facts)
    check_with_fields(sc, final_path, keylog, exp)
    if sc.tls:
        verify_tls_needs_keys(sc, final_path, keylog)
    with open(os.path.join(outdir, f"{sc.name}.expected.json"), "w") as f:
        json.dump(exp, f, indent=1)
        f.write("\n")
    shutil.rmtree(workdir, ignore_errors=True)
    if verbose:
        s0 = exp["sessions"]
        print(f"{sc.filename:34s} {exp['packets']:5d} pkts  {len(s0)} session(s)  "
              f"{os.path.getsize(final_path):8d} B  {time.time() - t0:5.1f}s  "
              f"findings={[s['findings'] for s in s0]}", flush=True)
    return exp


def check_with_fields(sc: Scenario, path: str, keylog: Optional[str], exp: dict) -> None:
    """Re-derive counts and close codes with plain `tshark -T fields` (no JSON walking)."""
    extra = (["-d", f"tcp.port=={sc.port},tls", "-d", f"tls.port=={sc.port},http"] if sc.tls
             else ["-d", f"tcp.port=={sc.port},http"])
    if keylog:
        extra += ["-o", f"tls.keylog_file:{keylog}"]
    rows = oracle.tshark_fields(path, ["frame.number", "tcp.stream", "tcp.srcport",
                                       "websocket.opcode", "websocket.payload.close.status_code"],
                                dfilter="websocket", extra=extra)
    got: dict = {}
    for no, stream, sport, opcodes, codes in rows:
        d = "server" if int(sport) == sc.port else "client"
        per = got.setdefault((int(stream), d), {"ops": [], "codes": [], "last": None})
        per["ops"] += [int(o) for o in opcodes.split(",")]
        per["codes"] += [int(c) for c in codes.split(",") if c]
        per["last"] = int(no)
    names = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
    for sess in exp["sessions"]:
        for d in ("client", "server"):
            per = got.get((sess["tcp_stream"], d), {"ops": [], "codes": [], "last": None})
            fr = sess["frames"][d]
            for op, name in names.items():
                if per["ops"].count(op) != fr[name]:
                    raise AssertionError(f"{sc.name}: fields check: {d} {name} "
                                         f"{per['ops'].count(op)} != {fr[name]}")
            if per["last"] != fr["last_frame"]:
                raise AssertionError(f"{sc.name}: fields check: {d} last frame")
            # A close frame without a status code (Flux STT) has no status field.
            want_codes = ([sess["close"][d]["code"]] if sess["close"][d]
                          and sess["close"][d]["code"] is not None else [])
            if per["codes"] != want_codes:
                raise AssertionError(f"{sc.name}: fields check: {d} close {per['codes']}")
    n = oracle.count_packets(path)
    if n != exp["packets"]:
        raise AssertionError(f"{sc.name}: packet count")


def verify_tls_needs_keys(sc: Scenario, path: str, keylog: Optional[str]) -> None:
    """Without the keys tshark must see no HTTP/WebSocket (only for key-log captures)."""
    if sc.embed_secrets:
        # The secrets travel inside the file: make sure it is a pcapng with a DSB.
        out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "websocket.opcode",
                              "-d", f"tcp.port=={sc.port},tls", "-d",
                              f"tls.port=={sc.port},http"], capture_output=True, text=True)
        if not out.stdout.strip():
            raise AssertionError(f"{sc.name}: embedded secrets did not decrypt")
        return
    out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "websocket.opcode",
                          "-e", "http.request.method", "-d", f"tcp.port=={sc.port},tls",
                          "-d", f"tls.port=={sc.port},http"], capture_output=True, text=True)
    if out.stdout.strip():
        raise AssertionError(f"{sc.name}: traffic readable without the key log?")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", metavar="NAME", help="scenario(s) to record")
    ap.add_argument("--list", action="store_true", help="list the scenarios")
    ap.add_argument("--out", default=HERE, help="output directory (default: captures/)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="record N scenarios at once (each has its own port; default 1)")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    ap.add_argument("--_workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        facts = asyncio.run(child_main(args._child, args._workdir))
        print("FACTS " + json.dumps(facts))
        return
    if args.list:
        for sc in SCENARIOS.values():
            print(f"{sc.filename:34s} port {sc.port}  {sc.description}")
        return
    names = args.only or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s): {unknown}; see --list")
    for tool in ("tcpdump", "dumpcap", "tshark", "editcap"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found")
    t0 = time.time()
    failed = []

    def one(n: str) -> None:
        try:
            record(SCENARIOS[n], args.out)
        except Exception as e:  # keep going, report at the end
            failed.append(n)
            print(f"FAILED {n}: {e}", file=sys.stderr, flush=True)

    if args.jobs <= 1:
        for n in names:
            one(n)
    else:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(one, names))
    print(f"done in {time.time() - t0:.0f}s; {len(names) - len(failed)} ok"
          + (f", failed: {failed}" if failed else ""))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
