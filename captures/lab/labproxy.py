#!/usr/bin/env python3
"""A small forward HTTP proxy that relays WebSocket upgrades (absolute-form requests).

tinyproxy (used for CONNECT) strips the hop-by-hop `Connection`/`Upgrade` headers of a plain
`GET http://host/path HTTP/1.1` request and answers with `Connection: close`, so it cannot
carry `ws://` through a forward proxy.  This one does what such proxies do: it takes the
absolute-form request target, resolves and connects to the origin, forwards the request in
origin form (`GET /path HTTP/1.1`, Host kept, Proxy-* headers dropped, `Via` added), keeps
`Connection: Upgrade` / `Upgrade: websocket`, then relays bytes both ways until either side
closes.  CONNECT gets 501 (use tinyproxy).  Bounded: 16 KB request head, 10 s to read it,
60 s idle, 300 s per connection, 32 connections.

    python labproxy.py --listen 10.99.2.10 --port 8080 --log proxy.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from urllib.parse import urlsplit

MAX_HEAD = 16384
IDLE = 60.0
LIFETIME = 300.0


class Proxy:
    def __init__(self) -> None:
        self.log: list[dict] = []
        self.slots = asyncio.Semaphore(32)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self.slots:
            rec: dict = {"client": "%s:%d" % writer.get_extra_info("peername")[:2],
                         "start": time.time()}
            self.log.append(rec)
            try:
                await asyncio.wait_for(self._serve(reader, writer, rec), LIFETIME)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ConnectionError, OSError, ValueError) as e:
                rec["error"] = repr(e)
            finally:
                writer.close()
                rec["end"] = time.time()

    async def _serve(self, reader, writer, rec) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if len(head) > MAX_HEAD:
            raise ValueError("request head too long")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        rec.update(method=method, target=target)
        if method == "CONNECT" or not target.startswith("http://"):
            writer.write(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            await writer.drain()
            rec["status"] = 501
            return
        url = urlsplit(target)
        port = url.port or 80
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        headers = [h for h in lines[1:] if h and not h.lower().startswith("proxy-")]
        headers.append("Via: 1.1 labproxy")
        up_r, up_w = await asyncio.wait_for(asyncio.open_connection(url.hostname, port), 10)
        rec["upstream"] = "%s:%d" % up_w.get_extra_info("peername")[:2]
        rec["upstream_local"] = "%s:%d" % up_w.get_extra_info("sockname")[:2]
        up_w.write(f"{method} {path} {version}\r\n".encode("latin-1") +
                   "\r\n".join(headers).encode("latin-1") + b"\r\n\r\n")
        await up_w.drain()
        rec["bytes"] = {"client_to_server": 0, "server_to_client": 0}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, key: str) -> None:
            try:
                while True:
                    data = await asyncio.wait_for(src.read(65536), IDLE)
                    if not data:
                        break
                    if key == "server_to_client" and "status" not in rec:
                        rec["status"] = int(data.split(b" ", 2)[1])
                    rec["bytes"][key] += len(data)
                    dst.write(data)
                    await dst.drain()
            finally:
                if dst.can_write_eof():
                    try:
                        dst.write_eof()
                    except OSError:
                        pass
        await asyncio.gather(pipe(reader, up_w, "client_to_server"),
                             pipe(up_r, writer, "server_to_client"), return_exceptions=True)
        up_w.close()


async def main(args: argparse.Namespace) -> None:
    proxy = Proxy()
    server = await asyncio.start_server(proxy.handle, args.listen, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("labproxy ready", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except asyncio.TimeoutError:
        pass
    server.close()
    with open(args.log, "w") as f:
        json.dump(proxy.log, f, indent=1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--log", required=True)
    ap.add_argument("--max-seconds", type=float, default=300)
    asyncio.run(main(ap.parse_args()))
