#!/usr/bin/env python3
"""The lab's WebSocket servers, run inside the "internet" namespace by record_lab.py.

* the Deepgram-like server (../fake_deepgram.py, unchanged) for api.deepgram.com:
  wss on <dg-ip>:443 with the lab certificate, and ws on <dg-ip>:80;
* chat.example.test: a WebSocket echo server (wss on <chat-ip>:443) that answers every text
  message with {"echo": ..., "n": ...} and closes when the client does.

Runs until SIGTERM/SIGINT (or --max-seconds), then writes a JSON log of every connection:
request id, path, status, audio bytes and SHA-256 received, close sent and the wall-clock
time (time.time(), the same clock as the capture timestamps) at which it was sent.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import fake_deepgram as fdg  # noqa: E402
from websockets.asyncio.server import serve  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Chat:
    def __init__(self) -> None:
        self.connections: list[dict] = []

    async def handler(self, ws) -> None:
        rec = {"path": ws.request.path, "opened": time.time(), "texts_received": 0,
               "texts_sent": 0, "close_rcvd": None, "closed": None}
        self.connections.append(rec)
        try:
            async for msg in ws:
                rec["texts_received"] += 1
                await ws.send(json.dumps({"echo": msg, "n": rec["texts_received"]}))
                rec["texts_sent"] += 1
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        rec["close_rcvd"] = [rcvd.code, rcvd.reason] if rcvd else None
        rec["closed"] = time.time()


async def main(args: argparse.Namespace) -> None:
    events: list[dict] = []

    def log(event: dict) -> None:
        events.append({**event, "time": time.time()})

    dg = fdg.FakeDeepgram(request_ids=fdg.RequestIds(base=args.id_base), log=log)
    chat = Chat()
    servers = []
    if args.dg_tls:
        servers.append(dg.serve(args.dg_ip, 443, ssl_context=tls_context(args.dg_cert,
                                                                         args.dg_key)))
    servers.append(dg.serve(args.dg_ip, 80))
    if args.chat_ip:
        servers.append(serve(chat.handler, args.chat_ip, 443, ping_interval=None,
                             ssl=tls_context(args.chat_cert, args.chat_key)))
    started = [await s.__aenter__() for s in servers]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("servers ready", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except asyncio.TimeoutError:
        pass
    for s in started:
        s.close()
    for s in started:
        try:
            await asyncio.wait_for(s.wait_closed(), 5)
        except asyncio.TimeoutError:
            pass
    with open(args.log, "w") as f:
        json.dump({"deepgram": dg.connections, "deepgram_events": events,
                   "chat": chat.connections}, f, indent=1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--dg-ip", required=True)
    ap.add_argument("--dg-tls", action="store_true")
    ap.add_argument("--dg-cert")
    ap.add_argument("--dg-key")
    ap.add_argument("--chat-ip")
    ap.add_argument("--chat-cert")
    ap.add_argument("--chat-key")
    ap.add_argument("--id-base", type=int, default=990000)
    ap.add_argument("--log", required=True)
    ap.add_argument("--max-seconds", type=float, default=300)
    asyncio.run(main(ap.parse_args()))
