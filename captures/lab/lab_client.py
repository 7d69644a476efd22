#!/usr/bin/env python3
"""The lab's client workload, run inside the client namespace by record_lab.py.

    python lab_client.py PLAN.json

PLAN (JSON) says what to do, all concurrently, with start offsets in seconds:
  dns:     names resolved with getaddrinfo(AF_UNSPEC) (A and AAAA queries over UDP)
  dns_tcp: names queried for A over TCP (a hand-built query, port 53)
  speech:  a real `websockets` client streaming linear16 16 kHz mono speech in real time
           (100 ms = 3200-byte chunks) to the Deepgram-like server; `stop_after` seconds of
           audio then silence until the server closes (NET-0001), else CloseStream; `proxy`
           {"kind": "connect"|"absolute", "url": "http://host:port"} routes it via a proxy
  chat:    a `websockets` client to the chat echo service (text messages, close 1000)
  fetches: curl (HTTP/2 or HTTP/1.1 over TLS), one connection per fetch
  idle:    HTTPS keep-alive connections (Python ssl): one GET, then quiet for `idle` seconds,
           then closed (or, with "reset", aborted with an RST without reading the server's
           earlier FIN)
Every TLS client writes its secrets to PLAN["keylog"] (ssl keylog_filename, curl
SSLKEYLOGFILE).  Writes PLAN["log"]: what each connection did, with wall-clock times
(time.time()) and local ports, so record_lab.py can map each one to its tcp.stream.
Prints "SPEECH-OPEN <time>" when the speech WebSocket is open (for mid-stream captures).
Bounded: every step has a timeout; the whole run is cut at PLAN["max_seconds"].
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import struct
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidProxyStatus, InvalidStatus

API_KEY = "dgtest_0123456789abcdef0123456789abcdef"
CHUNK = 3200  # 100 ms of 16 kHz linear16 mono
BPS = 32000


class Run:
    def __init__(self, plan: dict):
        self.plan = plan
        self.t0 = time.time()
        self.log: dict[str, Any] = {"t0": self.t0, "connections": [], "dns": []}

    def ssl_ctx(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.plan["cafile"])
        ctx.keylog_filename = self.plan["keylog"]
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx

    async def at(self, offset: float) -> None:
        await asyncio.sleep(max(0.0, self.t0 + offset - time.time()))

    # ------------------------------------------------------------------ DNS
    async def dns(self, names: list[str], offset: float) -> None:
        await self.at(offset)
        loop = asyncio.get_running_loop()
        for name in names:
            t = time.time()
            try:
                infos = await asyncio.wait_for(loop.getaddrinfo(name, 443,
                                                                type=socket.SOCK_STREAM), 10)
                addrs = sorted({i[4][0] for i in infos})
            except (OSError, asyncio.TimeoutError) as e:
                addrs = [f"error: {e}"]
            self.log["dns"].append({"name": name, "transport": "udp", "time": t,
                                    "addresses": addrs})

    async def dns_tcp(self, names: list[str], offset: float) -> None:
        await self.at(offset)
        server = open("/etc/resolv.conf").read().split("nameserver", 1)[1].split()[0]
        for i, name in enumerate(names):
            qid = 0x4C00 + i
            q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
            q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
            q += struct.pack("!HH", 1, 1)  # A, IN
            t = time.time()
            r, w = await asyncio.wait_for(asyncio.open_connection(server, 53), 5)
            port = w.get_extra_info("sockname")[1]
            w.write(struct.pack("!H", len(q)) + q)
            n = struct.unpack("!H", await asyncio.wait_for(r.readexactly(2), 5))[0]
            resp = await asyncio.wait_for(r.readexactly(n), 5)
            w.close()
            self.log["dns"].append({"name": name, "transport": "tcp", "time": t,
                                    "query_id": qid, "response_bytes": n})
            self.log["connections"].append({"class": "dns-tcp", "local_port": port,
                                            "server": f"{server}:53", "name": name,
                                            "start": t, "end": time.time(),
                                            "answers": struct.unpack("!H", resp[6:8])[0]})

    # ------------------------------------------------------------------ speech
    async def speech(self, p: dict) -> None:
        await self.at(p.get("offset", 0.0))
        audio = open(self.plan["audio"], "rb").read()
        url = p["url"]
        rec: dict[str, Any] = {"class": "deepgram-stream", "url": url, "status": None,
                               "sent": {"text": 0, "binary": 0, "audio_bytes": 0,
                                        "payload_bytes": 0},
                               "received": {"text": 0, "binary": 0, "types": {}},
                               "first_audio_time": None, "last_audio_time": None}
        self.log["connections"].append(rec)
        self.log["speech"] = rec
        kw: dict[str, Any] = dict(additional_headers={"Authorization": "Token " + API_KEY},
                                  ping_interval=None, close_timeout=5, open_timeout=15,
                                  max_size=2**22, compression=None)
        proxy = p.get("proxy")
        sock = None
        if url.startswith("wss:"):
            kw["ssl"] = self.ssl_ctx(["http/1.1"])
        if proxy and proxy["kind"] == "connect":
            kw["proxy"] = proxy["url"]
        elif proxy and proxy["kind"] == "absolute":
            pu = urlsplit(proxy["url"])
            sock = socket.create_connection((pu.hostname, pu.port), timeout=10)
            sock.setblocking(False)
            kw.update(proxy=None, sock=sock, create_connection=AbsoluteFormConnection)
        else:
            kw.update(proxy=None, family=socket.AF_INET)
        rec["start"] = time.time()
        try:
            ws = await connect(url, **kw)
        except InvalidProxyStatus as e:
            rec.update(status=None, proxy_status=e.response.status_code,
                       proxy_reason=e.response.reason_phrase, end=time.time())
            return
        except InvalidStatus as e:
            rec.update(status=e.response.status_code, end=time.time())
            return
        rec["status"] = 101
        rec["open_time"] = time.time()
        print(f"SPEECH-OPEN {rec['open_time']:.6f}", flush=True)
        rec["local_port"] = ws.transport.get_extra_info("sockname")[1]
        peer = ws.transport.get_extra_info("peername")
        rec["peer"] = f"{peer[0]}:{peer[1]}"
        rec["request_id"] = ws.response.headers.get("dg-request-id")

        async def reader() -> None:
            try:
                async for m in ws:
                    if isinstance(m, str):
                        rec["received"]["text"] += 1
                        kind = json.loads(m).get("type", "?")
                        rec["received"]["types"][kind] = rec["received"]["types"].get(kind, 0) + 1
                    else:
                        rec["received"]["binary"] += 1
            except ConnectionClosed:
                pass
        rtask = asyncio.create_task(reader())
        seconds = p.get("stop_after") or p["seconds"]
        n = int(round(seconds * BPS / CHUNK))
        t0 = time.monotonic()
        for i in range(n):
            data = audio[(i * CHUNK) % len(audio):][:CHUNK]
            try:
                await ws.send(data)
            except ConnectionClosed:
                break
            now = time.time()
            rec["first_audio_time"] = rec["first_audio_time"] or now
            rec["last_audio_time"] = now
            rec["sent"]["binary"] += 1
            rec["sent"]["audio_bytes"] += len(data)
            rec["sent"]["payload_bytes"] += len(data)
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.1 - time.monotonic()))
        if not p.get("stop_after"):
            msg = json.dumps({"type": "CloseStream"})
            await ws.send(msg)
            rec["closestream_time"] = time.time()
            rec["sent"]["text"] += 1
            rec["sent"]["payload_bytes"] += len(msg)
        try:
            await asyncio.wait_for(asyncio.shield(rtask), p.get("wait_close", 30))
            await asyncio.wait_for(ws.wait_closed(), 10)
        except asyncio.TimeoutError:
            await ws.close()
        proto = ws.protocol
        for key, frame in (("close_sent", proto.close_sent), ("close_rcvd", proto.close_rcvd)):
            rec[key] = [frame.code, frame.reason] if frame else None
        rec["close_rcvd_then_sent"] = proto.close_rcvd_then_sent
        rec["end"] = time.time()

    # ------------------------------------------------------------------ chat
    async def chat(self, p: dict) -> None:
        await self.at(p.get("offset", 0.0))
        rec: dict[str, Any] = {"class": "chat-websocket", "url": p["url"], "start": time.time(),
                               "texts_sent": 0, "texts_received": 0}
        self.log["connections"].append(rec)
        ws = await connect(p["url"], ssl=self.ssl_ctx(["http/1.1"]), proxy=None,
                           ping_interval=None, open_timeout=10, close_timeout=5,
                           compression=None, family=socket.AF_INET)
        rec["local_port"] = ws.transport.get_extra_info("sockname")[1]
        peer = ws.transport.get_extra_info("peername")
        rec["peer"] = f"{peer[0]}:{peer[1]}"
        for i in range(p["messages"]):
            await ws.send(json.dumps({"from": "lab-client", "text": f"message {i + 1}"}))
            rec["texts_sent"] += 1
            await asyncio.wait_for(ws.recv(), 5)
            rec["texts_received"] += 1
            await asyncio.sleep(p["interval"])
        await ws.close(1000, "bye")
        rec["close_sent"] = [1000, "bye"]
        rcvd = ws.protocol.close_rcvd
        rec["close_rcvd"] = [rcvd.code, rcvd.reason] if rcvd else None
        rec["end"] = time.time()

    # ------------------------------------------------------------------ HTTPS
    async def fetch(self, f: dict) -> None:
        await self.at(f["offset"])
        cmd = ["curl", "-s", "-o", "/dev/null", "--max-time", "10", "--cacert",
               self.plan["cafile"], "--http2" if f["http"] == "2" else "--http1.1",
               "-w", "%{local_ip} %{local_port} %{remote_ip} %{http_version} %{response_code} "
               "%{size_download}"]
        if f.get("source"):
            cmd += ["--interface", f["source"]]
        cmd.append(f["url"])
        env = dict(os.environ, SSLKEYLOGFILE=self.plan["keylog"])
        rec: dict[str, Any] = {"class": "https-fetch", "url": f["url"], "start": time.time()}
        self.log["connections"].append(rec)
        proc = await asyncio.create_subprocess_exec(*cmd, env=env,
                                                    stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 15)
        rec["end"] = time.time()
        lip, lport, rip, ver, code, size = out.decode().split()
        rec.update(local_ip=lip, local_port=int(lport), peer=f"{rip}:443",
                   http_version=ver, status=int(code), body_bytes=int(float(size)))

    def idle_then_reset(self, p: dict, rec: dict) -> None:
        """Blocking: one GET, then never read again (the server's FIN and close_notify sit
        unread in the socket), then abort with RST (SO_LINGER 0) after `idle` seconds."""
        host = urlsplit(p["url"]).hostname
        raw = socket.create_connection((host, 443), timeout=10)
        s = self.ssl_ctx(["http/1.1"]).wrap_socket(raw, server_hostname=host)
        rec["local_port"] = s.getsockname()[1]
        rec["peer"] = "%s:%d" % s.getpeername()[:2]
        s.sendall(f"GET {urlsplit(p['url']).path or '/'} HTTP/1.1\r\nHost: {host}\r\n"
                  "User-Agent: lab-keepalive/1\r\nConnection: keep-alive\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        head, body = buf.split(b"\r\n\r\n", 1)
        length = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n")
                          if ln.lower().startswith(b"content-length:")))
        while len(body) < length:
            body += s.recv(4096)
        rec["status"] = int(head.split()[1])
        rec["last_data_time"] = time.time()
        time.sleep(p["idle"])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rec["reset_time"] = time.time()
        s.close()

    async def idle(self, p: dict) -> None:
        await self.at(p["offset"])
        host = urlsplit(p["url"]).hostname
        rec: dict[str, Any] = {"class": "idle-keepalive", "url": p["url"], "start": time.time()}
        self.log["connections"].append(rec)
        if p.get("reset"):
            await asyncio.wait_for(asyncio.to_thread(self.idle_then_reset, p, rec),
                                   p["idle"] + 20)
            rec["end"] = time.time()
            return
        r, w = await asyncio.wait_for(asyncio.open_connection(
            host, 443, ssl=self.ssl_ctx(["http/1.1"]), family=socket.AF_INET), 10)
        rec["local_port"] = w.get_extra_info("sockname")[1]
        peer = w.get_extra_info("peername")
        rec["peer"] = f"{peer[0]}:{peer[1]}"
        path = urlsplit(p["url"]).path or "/"
        w.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lab-keepalive/1\r\n"
                "Connection: keep-alive\r\n\r\n".encode())
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
        length = 0
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":")[1])
        await asyncio.wait_for(r.readexactly(length), 10)
        rec["status"] = int(head.split()[1])
        rec["last_data_time"] = time.time()
        await asyncio.sleep(p["idle"])  # the keep-alive stays open and quiet
        w.close()
        try:
            await asyncio.wait_for(w.wait_closed(), 5)
        except (asyncio.TimeoutError, ssl.SSLError, ConnectionError):
            pass
        rec["end"] = time.time()

    async def attempt(self, a: dict) -> None:
        """A WebSocket open through a proxy that is expected to refuse the CONNECT."""
        await self.at(a["offset"])
        rec: dict[str, Any] = {"class": "proxy-refused", "url": a["url"], "proxy": a["proxy"],
                               "start": time.time()}
        self.log["connections"].append(rec)
        kw: dict[str, Any] = dict(proxy=a["proxy"], open_timeout=10, ping_interval=None,
                                  additional_headers={"Authorization": "Token " + API_KEY})
        if a["url"].startswith("wss:"):
            kw["ssl"] = self.ssl_ctx(["http/1.1"])
        try:
            ws = await connect(a["url"], **kw)
            await ws.close()
            rec["proxy_status"] = 200
        except InvalidProxyStatus as e:
            rec.update(proxy_status=e.response.status_code,
                       proxy_reason=e.response.reason_phrase)
        rec["end"] = time.time()

    async def main(self) -> None:
        p = self.plan
        tasks = []
        tasks += [self.attempt(a) for a in p.get("attempts", [])]
        if p.get("dns"):
            tasks.append(self.dns(p["dns"], 0.0))
        if p.get("dns_tcp"):
            tasks.append(self.dns_tcp(p["dns_tcp"], 0.3))
        if p.get("speech"):
            tasks.append(self.speech(p["speech"]))
        if p.get("chat"):
            tasks.append(self.chat(p["chat"]))
        tasks += [self.fetch(f) for f in p.get("fetches", [])]
        tasks += [self.idle(i) for i in p.get("idle", [])]
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True),
                                         p.get("max_seconds", 90))
        self.log["errors"] = [repr(r) for r in results if isinstance(r, BaseException)]
        self.log["end"] = time.time()


class AbsoluteFormConnection(ClientConnection):
    """websockets' client, but the request line carries the absolute URI (RFC 9112 3.2.2),
    as a client talking to a forward proxy sends it: GET http://host/path?query HTTP/1.1."""

    def __init__(self, protocol, *args, **kwargs):
        super().__init__(protocol, *args, **kwargs)
        send_request = protocol.send_request

        def absolute(request):
            uri = protocol.uri
            port = "" if uri.port == 80 else f":{uri.port}"
            request.path = f"http://{uri.host}{port}{request.path}"
            return send_request(request)
        protocol.send_request = absolute


def main() -> None:
    plan = json.load(open(sys.argv[1]))
    run = Run(plan)
    try:
        asyncio.run(run.main())
    finally:
        with open(plan["log"], "w") as f:
            json.dump(run.log, f, indent=1)


if __name__ == "__main__":
    main()
