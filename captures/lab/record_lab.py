#!/usr/bin/env python3
"""Record the network-lab captures (egress, proxies, tunnels) with truth files.

    sudo python captures/lab/record_lab.py                 # every scenario (~6 minutes)
    sudo python captures/lab/record_lab.py --only egress_mixed --only proxy_connect
    python captures/lab/record_lab.py --list

Each scenario function builds the lab (netlab.py), starts the services, runs the client
workload (lab_client.py) inside the client namespace, captures with tcpdump at the
scenario's capture point, tears everything down (also on error or Ctrl-C) and writes
`<name>.pcap`, `<name>.truth.json` and, for TLS, `<name>.keys` next to this file.
Some scenarios write several captures from one run (see README.md).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import labtools as lt  # noqa: E402
import netlab as nl  # noqa: E402

PY = sys.executable
OUT = HERE
LISTEN_URL = ("wss://api.deepgram.com/v1/listen?model=nova-3&encoding=linear16"
              "&sample_rate=16000")
LISTEN_PLAIN = LISTEN_URL.replace("wss://", "ws://")
WEB_HOSTS = list(nl.WEB)
WEB_PATHS = ["/", "/app.js", "/style.css", "/logo.bin", "/api/status.json"]

SCENARIOS: dict[str, tuple[Callable, str, list[str]]] = {}


def scenario(name: str, description: str, outputs: Optional[list[str]] = None):
    def deco(fn):
        SCENARIOS[name] = (fn, description, outputs or [name])
        return fn
    return deco


# ====================================================================== the lab services
class Lab:
    """netlab.up() + dnsmasq + nginx + the WebSocket servers (+ proxies on request)."""

    def __init__(self, workdir: str, proxies: bool = False):
        self.d = workdir
        self.procs: list[lt.Proc] = []
        self.proxies = proxies
        self.server_log = os.path.join(workdir, "servers.json")

    def __enter__(self) -> "Lab":
        nl.down()
        nl.up()
        try:
            self.pki = lt.make_pki(self.d, {
                "dg": ["api.deepgram.com", "api.lb.deepgram.com", nl.DG_EDGE],
                "chat": ["chat.example.test"], "web": WEB_HOSTS})
            self._dnsmasq()
            self._nginx()
            dg_c, dg_k = self.pki["dg"]
            ch_c, ch_k = self.pki["chat"]
            self.servers = self.start(nl.INET, [
                PY, os.path.join(HERE, "lab_servers.py"), "--dg-ip", nl.DG_IP, "--dg-tls",
                "--dg-cert", dg_c, "--dg-key", dg_k, "--chat-ip", nl.CHAT_IP,
                "--chat-cert", ch_c, "--chat-key", ch_k, "--log", self.server_log,
                "--max-seconds", "240"], "servers", ready="servers ready")
            if self.proxies:
                self._proxies()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start(self, ns: str, argv: list[str], name: str, ready: Optional[str] = None,
              settle: float = 0.0) -> lt.Proc:
        p = lt.Proc(ns, argv, name, ready=ready)
        self.procs.append(p)
        time.sleep(settle)
        if p.proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {p.lines[-10:]}")
        return p

    def _dnsmasq(self) -> None:
        argv = ["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--bind-interfaces", f"--listen-address={nl.DNS_IP}",
                f"--pid-file={self.d}/dnsmasq.pid", "--log-facility=-", "--log-queries",
                "--user=root", "--cache-size=0",
                f"--host-record={nl.DG_EDGE},{nl.DG_IP},{nl.DG_IP6}",
                f"--host-record=chat.example.test,{nl.CHAT_IP}"]
        argv += [f"--cname={a},{b}" for a, b in nl.DG_CNAMES]
        argv += [f"--host-record={h},{a}" for h, a in nl.WEB.items()]
        self.start(nl.INET, argv, "dnsmasq", settle=0.5)

    def _nginx(self) -> None:
        www = os.path.join(self.d, "www")
        os.makedirs(os.path.join(www, "api"), exist_ok=True)
        import random
        rnd = random.Random(4242)
        para = "<p>" + " ".join(["network lab page"] * 40) + "</p>\n"
        files = {"index.html": ("<!doctype html><title>lab</title>\n" + para * 3).encode(),
                 "app.js": ("// lab script\n" + "console.log('lab');\n" * 120).encode(),
                 "style.css": ("body{font:14px sans-serif}\n" * 70).encode(),
                 "logo.bin": bytes(rnd.getrandbits(8) for _ in range(2048)),
                 "api/status.json": json.dumps({"status": "ok", "items": list(range(60))}).encode()}
        for name, data in files.items():
            with open(os.path.join(www, name), "wb") as f:
                f.write(data)
        crt, key = self.pki["web"]
        # img.example.test closes idle keep-alives after 6 s (its idle client then resets).
        img_ip = nl.WEB["img.example.test"]
        listens = "\n".join(f"    listen {a}:443 ssl http2;" for h, a in nl.WEB.items()
                             if h != "img.example.test")
        conf = f"""
user root;
worker_processes 1;
daemon off;
pid {self.d}/nginx.pid;
error_log {self.d}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {self.d}/nb; proxy_temp_path {self.d}/np;
  fastcgi_temp_path {self.d}/nf; uwsgi_temp_path {self.d}/nu; scgi_temp_path {self.d}/ns;
  keepalive_timeout 60s;
  types {{ text/html html; application/javascript js; text/css css; application/json json; }}
  default_type application/octet-stream;
  server {{
{listens}
    server_name _;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    root {www};
  }}
  server {{
    listen {img_ip}:443 ssl http2;
    server_name _;
    keepalive_timeout 6s;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    root {www};
  }}
}}
"""
        path = os.path.join(self.d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.start(nl.INET, ["nginx", "-c", path], "nginx", settle=0.8)

    def _proxies(self) -> None:
        """tinyproxy (Debian) on 3128 (CONNECT to 443 only) and 3129 (BasicAuth: a CONNECT
        without credentials gets 407); labproxy.py on 8080 for absolute-form ws://."""
        for port, extra in ((3128, ""), (3129, "BasicAuth labuser labpass\n")):
            conf = os.path.join(self.d, f"tinyproxy-{port}.conf")
            with open(conf, "w") as f:
                f.write(f"User nobody\nGroup nogroup\nPort {port}\nListen {nl.PROXY_IN}\n"
                        "Timeout 60\nMaxClients 20\nLogLevel Info\n"
                        "Allow 10.99.0.0/16\nConnectPort 443\nDisableViaHeader No\n" + extra)
            self.start(nl.PROXY, ["tinyproxy", "-d", "-c", conf], f"tinyproxy {port}",
                       settle=0.5)
        self.proxy_log = os.path.join(self.d, "labproxy.json")
        self.labproxy = self.start(nl.PROXY, [
            PY, os.path.join(HERE, "labproxy.py"), "--listen", nl.PROXY_IN, "--port", "8080",
            "--log", self.proxy_log, "--max-seconds", "240"], "labproxy", ready="labproxy ready")

    def stop_labproxy(self) -> list:
        self.labproxy.stop()
        with open(self.proxy_log) as f:
            return json.load(f)

    def stop_servers(self) -> dict:
        self.servers.stop()
        with open(self.server_log) as f:
            return json.load(f)

    def __exit__(self, *exc) -> None:
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:
                pass
        nl.down()


def run_client(plan: dict, workdir: str, on_line: Optional[Callable[[str], None]] = None,
               ns: str = nl.CLIENT) -> dict:
    plan = dict(plan, keylog=os.path.join(workdir, "keys.log"),
                log=os.path.join(workdir, "client.json"),
                cafile=os.path.join(workdir, "ca.crt"), audio=os.path.join(workdir, "speech.raw"))
    pf = os.path.join(workdir, "plan.json")
    with open(pf, "w") as f:
        json.dump(plan, f)
    lines: list[str] = []
    p = lt.Proc(ns, [PY, os.path.join(HERE, "lab_client.py"), pf], "client",
                stdout_lines=lines)
    seen = 0
    deadline = time.time() + plan.get("max_seconds", 90) + 20
    while p.proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
        while seen < len(lines):
            if on_line:
                on_line(lines[seen])
            seen += 1
    if p.proc.poll() is None:
        p.stop()
        raise RuntimeError("client did not finish in time")
    p.wait(5)
    with open(plan["log"]) as f:
        log = json.load(f)
    if log.get("errors"):
        raise RuntimeError(f"client errors: {log['errors']} / {lines[-10:]}")
    return log


def captured_run(workdir: str, captures: list[tuple], plan: dict, *, ns: str = nl.CLIENT,
                 on_line: Optional[Callable[[str], None]] = None,
                 late: Optional[list] = None) -> dict:
    """Start tcpdump for each (namespace, path, interface, Capture kwargs), run the client
    plan, let the last ACKs through, stop every capture (also on error: `late` holds
    captures started during the run) and return the client's log."""
    caps: list[lt.Capture] = []
    try:
        for cns, path, iface, kw in captures:
            caps.append(lt.Capture(cns, path, iface, **kw))
        log = run_client(plan, workdir, on_line, ns=ns)
        time.sleep(1.0)
    finally:
        for c in caps + (late or []):
            c.stop()
    return log


# ====================================================================== egress workload
def egress_plan(stop_after: Optional[float] = None, speech_seconds: float = 20.0) -> dict:
    fetches = []
    for i in range(24):
        fetches.append({"offset": round(1.2 + i * 0.75, 2),
                        "url": f"https://{WEB_HOSTS[i % 4]}{WEB_PATHS[i % 5]}",
                        "http": "1.1" if i % 3 == 2 else "2",
                        "source": nl.CLIENT_IP2 if i % 4 == 3 else None})
    return {
        "dns": ["api.deepgram.com", "chat.example.test", *WEB_HOSTS],
        "dns_tcp": ["api.deepgram.com"],
        "speech": {"offset": 0.8, "url": LISTEN_URL, "seconds": speech_seconds,
                   "stop_after": stop_after, "wait_close": 30},
        "chat": {"offset": 1.5, "url": "wss://chat.example.test/rooms/lab", "messages": 8,
                 "interval": 2.0},
        # The last keep-alive's server (img) times out after 6 s: server FIN, then 7 s
        # later the client resets the connection (RST).
        "idle": [{"offset": 1.0 + k, "url": f"https://{WEB_HOSTS[k]}/", "idle": 13.0,
                  "reset": k == 3} for k in range(4)],
        "fetches": fetches,
        "max_seconds": 70,
    }


def classify(conns: dict[int, dict], client_log: dict) -> None:
    """Give every captured TCP connection the class the scenario made it with."""
    entries = [e for e in client_log["connections"] if e.get("local_port")]
    for c in conns.values():
        cport = int(c["client"].rsplit(":", 1)[1])
        server = c["server"]
        hits = [e for e in entries if e["local_port"] == cport and
                (e.get("peer") == server or e.get("server") == server)]
        if len(hits) != 1:
            raise RuntimeError(f"tcp.stream {c['tcp_stream']} {c['client']}->{server}: "
                               f"{len(hits)} matching client-log entries")
        e = hits[0]
        c["class"] = e["class"]
        c["url"] = e.get("url")
        if e["class"] == "https-fetch":
            c["http_version"] = e["http_version"]
            c["client_host"] = e["local_ip"]


def egress_truth(name: str, path: str, keys: str, client_log: dict, servers: dict, *,
                 description: str, notes: str, capture_point: str, snaplen: int,
                 nat_both: bool = False, midstream: bool = False) -> dict:
    conns = lt.tcp_connections(path)
    lt.tls_facts(path, conns)
    if not midstream:  # without the handshake in the file, the key log cannot help
        lt.tls_decrypted_facts(path, conns, keys)
    if midstream:
        for c in conns.values():  # NAT address is the client side whatever the ports say
            if not c["client"].startswith(nl.FW_OUTSIDE):
                c["client"], c["server"] = c["server"], c["client"]
                c["client_payload_bytes"], c["server_payload_bytes"] = \
                    c["server_payload_bytes"], c["client_payload_bytes"]
    classify(conns, client_log)
    if nat_both:
        for c in conns.values():
            c["side"] = "outside" if c["client"].startswith(nl.FW_OUTSIDE) else "inside"
        for c in conns.values():
            twins = [o["tcp_stream"] for o in conns.values() if o is not c and
                     o["server"] == c["server"] and o["client"].rsplit(":", 1)[1] ==
                     c["client"].rsplit(":", 1)[1] and o["side"] != c["side"]]
            c["twin_tcp_stream"] = twins[0] if len(twins) == 1 else None
    ws = lt.websocket_frames(path, keylog=keys)
    dns = lt.dns_answers(path)
    sp, sv = client_log["speech"], servers["deepgram"][0]
    dg_streams = [c for c in conns.values() if c["class"] == "deepgram-stream"]
    sessions = []
    for c in sorted(conns.values(), key=lambda c: c["tcp_stream"]):
        if c["class"] not in ("deepgram-stream", "chat-websocket"):
            continue
        s = {"tcp_stream": c["tcp_stream"], "class": c["class"], "client": c["client"],
             "server": c["server"], "sni": c.get("tls", {}).get("sni"),
             "handshake": lt.http_exchange(path, c["tcp_stream"], keylog=keys),
             "websocket": lt.ws_summary(ws.get(c["tcp_stream"], []), c["client"])}
        if c.get("side"):
            s["side"] = c["side"]
        if midstream and not c["syn_seen"]:
            # The TLS handshake is not in the file: no key log can decrypt this stream, so
            # there are no WebSocket facts to give (the egress block has the keyless ones).
            s.update(handshake=None, websocket=None,
                     note="started before the capture: TLS handshake and upgrade not in the "
                          "file; not decryptable")
        sessions.append(s)
    first_syn = min((c["first_frame"] for c in dg_streams), default=None)
    dg_dns = [a for a in dns if a["name"] == "api.deepgram.com"]
    a_before = [a for a in dg_dns if a["qtype"] == 1 and first_syn and a["frame"] < first_syn]
    # Keyless: every client record of outer type 23 (TLS 1.3 Finished and close_notify
    # included); "decrypted": only inner application-data records (needs the key log).
    egress = []
    for c in dg_streams:
        t = c.get("tls", {})
        active = None
        if t.get("first_client_appdata_time") is not None:
            active = round(t["last_client_appdata_time"] - t["first_client_appdata_time"], 6)
        egress.append({
            "tcp_stream": c["tcp_stream"], "client_tls_appdata_records":
                t.get("client_appdata_records"),
            "client_tls_appdata_bytes": t.get("client_appdata_bytes"),
            "client_tcp_payload_bytes": c["client_payload_bytes"],
            "first_client_appdata_frame": t.get("first_client_appdata_frame"),
            "last_client_appdata_frame": t.get("last_client_appdata_frame"),
            "first_client_appdata_time": t.get("first_client_appdata_time"),
            "last_client_appdata_time": t.get("last_client_appdata_time"),
            "active_seconds": active,
            "bytes_per_second": (round(t["client_appdata_bytes"] / active, 1)
                                 if active else None),
            "decrypted": t.get("decrypted")})
    net0001 = [e for e in servers["deepgram_events"] if e.get("close") == 1011]
    truth = {
        "capture": os.path.basename(path), "format": "pcap", "packets": lt.packet_count(path),
        "description": description, "notes": notes, "capture_point": capture_point,
        "snaplen": snaplen, "keylog": os.path.basename(keys),
        "lab": {"client_hosts": [nl.CLIENT_IP, nl.CLIENT_IP2], "nat_address": nl.FW_OUTSIDE,
                "dns_server": nl.DNS_IP, "api.deepgram.com": nl.DG_IP,
                "chat.example.test": nl.CHAT_IP, "web": nl.WEB,
                "cname_chain": [a for a, _ in nl.DG_CNAMES] + [nl.DG_EDGE]},
        "dns": {"api.deepgram.com": {
            "answer_frames": [a["frame"] for a in dg_dns],
            "answers": [{k: a[k] for k in ("frame", "transport", "qtype", "cnames", "a", "aaaa")}
                        for a in dg_dns],
            "a_answer_frame_before_stream": a_before[-1]["frame"] if a_before else None},
            "answer_count": len(dns)},
        "connections": [c for _, c in sorted(conns.items())],
        "connection_counts": dict(sorted(_count(conns).items())),
        "sessions": sessions,
        "egress": egress,
        "deepgram": {
            "request_id": sp.get("request_id"), "url": sp["url"],
            "client": {"audio_bytes_sent": sp["sent"]["audio_bytes"],
                       "binary_frames_sent": sp["sent"]["binary"],
                       "text_frames_sent": sp["sent"]["text"],
                       "payload_bytes_sent": sp["sent"]["payload_bytes"],
                       "open_time": sp.get("open_time"),
                       "first_audio_send_time": sp["first_audio_time"],
                       "last_audio_send_time": sp["last_audio_time"],
                       "closestream_time": sp.get("closestream_time"),
                       "received_text": sp["received"]["text"],
                       "received_types": sp["received"]["types"],
                       "close_sent": sp.get("close_sent"), "close_rcvd": sp.get("close_rcvd")},
            "server": {"request_id": sv["request_id"], "audio_bytes_received": sv["audio_bytes"],
                       "audio_sha256": sv["sha256"], "close_sent": sv["close_sent"],
                       "close_sent_time": (servers["deepgram_events"][0]["time"]
                                           if servers["deepgram_events"] else None)},
            "net0001": ({"close_time": net0001[0]["time"],
                         "silence_seconds": round(net0001[0]["time"] - sp["last_audio_time"], 6)}
                        if net0001 else None)},
        "chat": {k: v for k, v in next(e for e in client_log["connections"]
                                       if e["class"] == "chat-websocket").items()
                 if k in ("url", "texts_sent", "texts_received", "close_sent", "close_rcvd")},
        "oracle": oracle_version(),
    }
    lt.assert_no_secret(truth, name)
    return truth


def _count(conns: dict[int, dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in conns.values():
        out[c["class"]] = out.get(c["class"], 0) + 1
    out["total"] = len(conns)
    return out


def oracle_version() -> str:
    return lt.oracle.tshark_version()


def write_json(name: str, obj: Any) -> None:
    with open(os.path.join(OUT, f"{name}.truth.json"), "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")


def ship(src: str, name: str) -> str:
    dst = os.path.join(OUT, name)
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o644)
    return dst


# ====================================================================== group A: egress
REAL_EGRESS = ("Real traffic: every packet was sent by real clients (websockets, curl, Python "
               "ssl, glibc resolver) to real servers (fake_deepgram.py, a websockets echo "
               "server, nginx, dnsmasq) across Linux network namespaces joined by veth pairs, "
               "routed and NATed (nftables masquerade) by the fw namespace; nothing rewritten. "
               "Addresses are lab-only (10.99.0.0/16 inside, 172.31.0.0/16 outside). TLS 1.3; "
               "the client's key log is shipped next to the capture (not embedded).")


@scenario("egress_mixed",
          "Mixed egress through NAT: DNS (UDP, one TCP query), a 20 s speech stream to "
          "api.deepgram.com ending normally, a chat WebSocket, 24 HTTPS fetches (h2 and "
          "http/1.1), 4 idle keep-alives; captured on fw's outside interface. The same run "
          "writes egress_headers_only (-s 128), egress_nat_both (-i any) and egress_midstream "
          "(a capture started 5 s after the speech stream opened).",
          ["egress_mixed", "egress_headers_only", "egress_nat_both", "egress_midstream"])
def s_egress_mixed(workdir: str) -> None:
    lt.make_speech(workdir, 20.5)
    names = {"full": "egress_mixed", "snap": "egress_headers_only", "any": "egress_nat_both",
             "mid": "egress_midstream"}
    paths = {k: os.path.join(workdir, f"{v}.pcap") for k, v in names.items()}
    with Lab(workdir) as lab:
        mid: list[lt.Capture] = []

        def on_line(line: str) -> None:
            if line.startswith("SPEECH-OPEN"):
                opened = float(line.split()[1])

                def later() -> None:
                    time.sleep(max(0.0, opened + 5.0 - time.time()))
                    mid.append(lt.Capture(nl.FW, paths["mid"], "fo0"))
                threading.Thread(target=later, daemon=True).start()
        log = captured_run(workdir, [(nl.FW, paths["full"], "fo0", {}),
                                     (nl.FW, paths["snap"], "fo0", {"snaplen": 128}),
                                     (nl.FW, paths["any"], "any", {})],
                           egress_plan(), on_line=on_line, late=mid)
        servers = lab.stop_servers()
    keys = ship(os.path.join(workdir, "keys.log"), "egress_mixed.keys")
    sp = log["speech"]
    if not (sp["close_rcvd"] == [1000, ""] and servers["deepgram"][0]["close_sent"] == [1000, ""]):
        raise RuntimeError(f"speech did not end normally: {sp}")
    full = ship(paths["full"], "egress_mixed.pcap")
    t = egress_truth("egress_mixed", full, keys, log, servers,
                     description=SCENARIOS["egress_mixed"][1], notes=REAL_EGRESS,
                     capture_point="fw namespace, fo0 (outside, after NAT), tcpdump -s 0",
                     snaplen=262144)
    write_json("egress_mixed", t)
    # headers-only: the same packets (started together), each cut to 128 bytes.
    snap = ship(paths["snap"], "egress_headers_only.pcap")
    a = lt.fields(snap, ["frame.time_epoch", "frame.len"])
    b = lt.fields(full, ["frame.time_epoch", "frame.len"])
    if [r["frame.len"] for r in a] != [r["frame.len"] for r in b]:
        raise RuntimeError("headers-only capture does not hold the same packets")
    # Two packet sockets timestamp each packet separately: a few microseconds apart.
    skew = max(abs(float(x["frame.time_epoch"]) - float(y["frame.time_epoch"]))
               for x, y in zip(a, b))
    if skew > 0.005:
        raise RuntimeError(f"headers-only timestamps differ by {skew} s")
    ho = dict(t, capture="egress_headers_only.pcap", snaplen=128,
              capture_point="fw namespace, fo0, tcpdump -s 128 (same run as egress_mixed)",
              notes=REAL_EGRESS + " Recorded simultaneously with egress_mixed.pcap: the same "
                    "packets with the same timestamps and frame numbers, each cut to 128 "
                    "bytes; every value here was computed on the full capture "
                    "(egress_mixed.pcap) and checked to be frame-identical (same packets, "
                    "lengths and frame numbers; timestamps within "
                    "max_timestamp_delta_vs_full_seconds, each tcpdump stamps its own copy).",
              frames_identical_to="egress_mixed.pcap",
              max_timestamp_delta_vs_full_seconds=round(skew, 6))
    write_json("egress_headers_only", ho)
    anyp = ship(paths["any"], "egress_nat_both.pcap")
    write_json("egress_nat_both", egress_truth(
        "egress_nat_both", anyp, keys, log, servers, description=SCENARIOS["egress_mixed"][1],
        notes=REAL_EGRESS + " Captured with tcpdump -i any in the fw namespace during the same "
              "run as egress_mixed: every client packet appears twice (fi0 inside before NAT, "
              "10.99.1.x; fo0 outside after NAT, 172.31.0.1), Linux cooked capture (SLL). "
              "Each connection has side inside/outside and twin_tcp_stream.",
        capture_point="fw namespace, tcpdump -i any (inside and outside)", snaplen=262144,
        nat_both=True))
    midp = ship(paths["mid"], "egress_midstream.pcap")
    mt = egress_truth(
        "egress_midstream", midp, keys, log, servers, description=SCENARIOS["egress_mixed"][1],
        notes=REAL_EGRESS + " This capture was started 5 s after the speech WebSocket opened "
              "(same run as egress_mixed): the speech stream's TCP and TLS handshakes, its "
              "HTTP upgrade and the DNS lookups are NOT in the file; tshark cannot decrypt it "
              "even with the key log (no handshake). Client/server of streams without a SYN "
              "are known from the NAT address.", capture_point="fw namespace, fo0, started "
              "5 s after the speech stream opened", snaplen=262144, midstream=True)
    mt["capture_started_after_speech_open_seconds"] = round(
        lt.packet_first_time(midp) - sp["open_time"], 6)
    write_json("egress_midstream", mt)


@scenario("egress_net0001",
          "egress_mixed's traffic mix, but the speech client stops sending after 8 s of audio "
          "(socket left open, no CloseStream) and the Deepgram-like server closes with 1011 "
          "NET-0001 ten seconds after the last client frame; captured on fw's outside "
          "interface.")
def s_egress_net0001(workdir: str) -> None:
    lt.make_speech(workdir, 20.5)
    path = os.path.join(workdir, "egress_net0001.pcap")
    with Lab(workdir) as lab:
        log = captured_run(workdir, [(nl.FW, path, "fo0", {})], egress_plan(stop_after=8.0))
        servers = lab.stop_servers()
    sp = log["speech"]
    if servers["deepgram"][0]["close_sent"][0] != 1011 or (sp["close_rcvd"] or [0])[0] != 1011:
        raise RuntimeError(f"no NET-0001: {sp} {servers}")
    keys = ship(os.path.join(workdir, "keys.log"), "egress_net0001.keys")
    pcap = ship(path, "egress_net0001.pcap")
    write_json("egress_net0001", egress_truth(
        "egress_net0001", pcap, keys, log, servers,
        description=SCENARIOS["egress_net0001"][1], notes=REAL_EGRESS + " The NET-0001 close "
        "is the unmodified fake_deepgram.py timeout (10 s after the last client frame).",
        capture_point="fw namespace, fo0 (outside, after NAT), tcpdump -s 0", snaplen=262144))


# ====================================================================== group B: proxies
REAL_PROXY = ("Real traffic: a real websockets client (websockets 17 proxy support: CONNECT, "
              "then TLS) in the client namespace, tinyproxy 1.11 (Debian) in the proxy "
              "namespace, the Deepgram-like server in the inet namespace; nothing rewritten. "
              "The proxy resolves api.deepgram.com itself (its DNS query is on its uplink).")


def proxy_truth(name: str, path: str, keys: Optional[str], client_log: dict, servers: dict,
                *, description: str, notes: str, capture_point: str,
                proxy_log: Optional[list] = None) -> dict:
    conns = lt.tcp_connections(path)
    lt.tls_facts(path, conns)
    if keys:
        lt.tls_decrypted_facts(path, conns, keys)
    ws = lt.websocket_frames(path, keylog=keys)
    sp = client_log.get("speech")
    for c in conns.values():
        chost, cport = c["client"].rsplit(":", 1)
        if c["server"].startswith(nl.PROXY_IN + ":"):
            c["leg"] = "client-to-proxy"
            hits = [e for e in client_log["connections"] if e.get("local_port") == int(cport)]
            c["class"] = hits[0]["class"] if hits else "proxy-refused"
        elif chost == nl.PROXY_OUT:
            c["leg"] = "proxy-to-server"
            c["class"] = "dns-tcp" if c["server"].endswith(":53") else "deepgram-stream"
        else:
            raise RuntimeError(f"unexpected connection {c}")
        c["http"] = lt.http_exchange(path, c["tcp_stream"], keylog=keys)
        if ws.get(c["tcp_stream"]):
            c["websocket"] = lt.ws_summary(ws[c["tcp_stream"]], c["client"])
    truth: dict[str, Any] = {
        "capture": os.path.basename(path), "format": "pcap", "packets": lt.packet_count(path),
        "description": description, "notes": notes, "capture_point": capture_point,
        "snaplen": 262144, "keylog": os.path.basename(keys) if keys else None,
        "lab": {"client": nl.CLIENT_IP, "proxy_inside": nl.PROXY_IN,
                "proxy_uplink": nl.PROXY_OUT, "api.deepgram.com": nl.DG_IP},
        "connections": [c for _, c in sorted(conns.items())],
        "dns": [{k: a[k] for k in ("frame", "transport", "name", "qtype", "cnames", "a")}
                for a in lt.dns_answers(path)],
    }
    legs = [c for c in conns.values() if c["class"] == "deepgram-stream"]
    if len(legs) == 2:
        cl = next(c for c in legs if c["leg"] == "client-to-proxy")
        sl = next(c for c in legs if c["leg"] == "proxy-to-server")
        truth["stream_legs"] = {
            "client_leg_tcp_stream": cl["tcp_stream"], "server_leg_tcp_stream": sl["tcp_stream"],
            "client_leg_client_bytes": cl["client_payload_bytes"],
            "server_leg_client_bytes": sl["client_payload_bytes"]}
        if cl["http"].get("method") == "CONNECT":
            truth["stream_legs"].update(
                client_leg_tunnel_client_bytes=cl["client_payload_bytes"]
                - cl["http"]["request_bytes"],
                note="the client leg carries the CONNECT request in clear text before the "
                     "tunnelled TLS bytes; after it both legs carry the same TLS bytes")
        else:
            truth["stream_legs"]["note"] = (
                "the proxy forwards the request in origin form (absolute URI -> path) and adds "
                "Via, so the request heads differ in length; after the 101 both legs carry "
                "the same WebSocket bytes")
    if sp:
        sv = servers["deepgram"][0] if servers["deepgram"] else None
        truth["deepgram"] = {
            "request_id": sp.get("request_id"), "url": sp["url"], "proxy": sp.get("proxy"),
            "client": {"status": sp["status"], "audio_bytes_sent": sp["sent"]["audio_bytes"],
                       "binary_frames_sent": sp["sent"]["binary"],
                       "text_frames_sent": sp["sent"]["text"],
                       "first_audio_send_time": sp["first_audio_time"],
                       "last_audio_send_time": sp["last_audio_time"],
                       "received_types": sp["received"]["types"],
                       "close_sent": sp.get("close_sent"), "close_rcvd": sp.get("close_rcvd")},
            "server": sv and {"request_id": sv["request_id"],
                              "audio_bytes_received": sv["audio_bytes"],
                              "audio_sha256": sv["sha256"], "close_sent": sv["close_sent"]}}
    refused = [e for e in client_log["connections"] if e["class"] == "proxy-refused"]
    if refused:
        truth["refused"] = [{k: e.get(k) for k in ("url", "proxy", "proxy_status",
                                                   "proxy_reason")} for e in refused]
    if proxy_log is not None:
        truth["labproxy_log"] = [{k: e.get(k) for k in ("client", "method", "target",
                                                        "upstream", "upstream_local", "status",
                                                        "bytes")} for e in proxy_log]
    truth["oracle"] = oracle_version()
    lt.assert_no_secret(truth, name)
    return truth


def speech_only(url: str, proxy: dict, seconds: float = 10.0) -> dict:
    return {"speech": {"offset": 0.3, "url": url, "seconds": seconds, "proxy": proxy,
                       "wait_close": 20}, "max_seconds": 60}


@scenario("proxy_connect",
          "wss:// speech stream (10 s, normal end) through tinyproxy: CONNECT "
          "api.deepgram.com:443, 200 Connection established, TLS 1.3, WebSocket. Writes "
          "proxy_connect (client-to-proxy leg, captured on fw's interface toward the proxy) "
          "and proxy_both_legs (tcpdump -i any in the proxy namespace: the client leg on pi0 "
          "and the proxy's own DNS lookup and TCP/TLS leg to api.deepgram.com on po0).",
          ["proxy_connect", "proxy_both_legs"])
def s_proxy_connect(workdir: str) -> None:
    lt.make_speech(workdir, 10.5)
    pc, pb = (os.path.join(workdir, n) for n in ("proxy_connect.pcap", "proxy_both_legs.pcap"))
    with Lab(workdir, proxies=True) as lab:
        log = captured_run(workdir, [(nl.FW, pc, "fp0", {"filt": "tcp port 3128"}),
                                     (nl.PROXY, pb, "any", {})],
                           speech_only(LISTEN_URL, {"kind": "connect",
                                                    "url": f"http://{nl.PROXY_IN}:3128"}))
        servers = lab.stop_servers()
    if log["speech"].get("close_rcvd") != [1000, ""]:
        raise RuntimeError(f"proxied stream did not end normally: {log['speech']}")
    log["speech"]["proxy"] = f"http://{nl.PROXY_IN}:3128"
    keys = ship(os.path.join(workdir, "keys.log"), "proxy_connect.keys")
    shutil.copyfile(keys, os.path.join(OUT, "proxy_both_legs.keys"))
    desc = SCENARIOS["proxy_connect"][1]
    write_json("proxy_connect", proxy_truth(
        "proxy_connect", ship(pc, "proxy_connect.pcap"), keys, log, servers, description=desc,
        notes=REAL_PROXY, capture_point="fw namespace, fp0 (toward the proxy), "
        "filter 'tcp port 3128'"))
    write_json("proxy_both_legs", proxy_truth(
        "proxy_both_legs", ship(pb, "proxy_both_legs.pcap"),
        os.path.join(OUT, "proxy_both_legs.keys"), log, servers, description=desc,
        notes=REAL_PROXY + " Same run as proxy_connect; Linux cooked capture (-i any) with "
        "both proxy interfaces: the client leg 10.99.1.10 -> 10.99.2.10:3128 and the "
        "server leg 172.31.1.10 -> 172.31.10.20:443 (plus ARP and the proxy's DNS).",
        capture_point="proxy namespace, tcpdump -i any (pi0 and po0)"))


@scenario("proxy_connect_denied",
          "Two refused CONNECTs (websockets client, wss://): tinyproxy with BasicAuth answers "
          "407 Proxy Authentication Required to a CONNECT without credentials; tinyproxy "
          "without auth answers 403 Access violation to CONNECT api.deepgram.com:8443 "
          "(ConnectPort allows 443 only). No TLS follows either.")
def s_proxy_denied(workdir: str) -> None:
    lt.make_speech(workdir, 1)
    path = os.path.join(workdir, "proxy_connect_denied.pcap")
    with Lab(workdir, proxies=True) as lab:
        plan = {"attempts": [
            {"offset": 0.3, "url": LISTEN_URL, "proxy": f"http://{nl.PROXY_IN}:3129"},
            {"offset": 1.0, "url": LISTEN_URL.replace("api.deepgram.com/",
                                                      "api.deepgram.com:8443/"),
             "proxy": f"http://{nl.PROXY_IN}:3128"}], "max_seconds": 30}
        log = captured_run(workdir, [(nl.FW, path, "fp0",
                                      {"filt": "tcp port 3128 or tcp port 3129"})], plan)
        servers = lab.stop_servers()
    got = [e["proxy_status"] for e in log["connections"]]
    if got != [407, 403]:
        raise RuntimeError(f"expected 407 and 403, got {got}")
    write_json("proxy_connect_denied", proxy_truth(
        "proxy_connect_denied", ship(path, "proxy_connect_denied.pcap"), None, log, servers,
        description=SCENARIOS["proxy_connect_denied"][1], notes=REAL_PROXY,
        capture_point="fw namespace, fp0, filter 'tcp port 3128 or tcp port 3129'"))


@scenario("proxy_ws_absolute",
          "ws:// (plain) speech stream (10 s, normal end) through a forward proxy with an "
          "absolute-form request target: GET http://api.deepgram.com/v1/listen?... HTTP/1.1 "
          "+ Upgrade, 101, WebSocket. The proxy is captures/lab/labproxy.py (tinyproxy 1.11 "
          "sends Connection: close upstream and the server answers 426). Writes "
          "proxy_ws_absolute (client-to-proxy leg) and proxy_ws_absolute_both_legs.",
          ["proxy_ws_absolute", "proxy_ws_absolute_both_legs"])
def s_proxy_ws_absolute(workdir: str) -> None:
    lt.make_speech(workdir, 10.5)
    pa, pb = (os.path.join(workdir, n) for n in ("proxy_ws_absolute.pcap",
                                                 "proxy_ws_absolute_both_legs.pcap"))
    with Lab(workdir, proxies=True) as lab:
        log = captured_run(workdir, [(nl.FW, pa, "fp0", {"filt": "tcp port 8080"}),
                                     (nl.PROXY, pb, "any", {})],
                           speech_only(LISTEN_PLAIN, {"kind": "absolute",
                                                      "url": f"http://{nl.PROXY_IN}:8080"}))
        plog = lab.stop_labproxy()
        servers = lab.stop_servers()
    if log["speech"].get("close_rcvd") != [1000, ""]:
        raise RuntimeError(f"proxied stream did not end normally: {log['speech']}")
    log["speech"]["proxy"] = f"http://{nl.PROXY_IN}:8080 (absolute-form)"
    notes = ("Real traffic: a real websockets client whose request line carries the absolute "
             "URI (lab_client.AbsoluteFormConnection), captures/lab/labproxy.py (a bounded "
             "Python forward proxy: forwards in origin form, keeps Upgrade, relays bytes), the "
             "Deepgram-like server on port 80; nothing rewritten.  The API key is in the "
             "pcap in clear text (Authorization header), never in this file.")
    desc = SCENARIOS["proxy_ws_absolute"][1]
    write_json("proxy_ws_absolute", proxy_truth(
        "proxy_ws_absolute", ship(pa, "proxy_ws_absolute.pcap"), None, log, servers,
        description=desc, notes=notes, proxy_log=plog,
        capture_point="fw namespace, fp0, filter 'tcp port 8080'"))
    write_json("proxy_ws_absolute_both_legs", proxy_truth(
        "proxy_ws_absolute_both_legs", ship(pb, "proxy_ws_absolute_both_legs.pcap"), None, log,
        servers, description=desc, notes=notes + " Same run; tcpdump -i any in the proxy "
        "namespace (both legs, Linux cooked capture).", proxy_log=plog,
        capture_point="proxy namespace, tcpdump -i any (pi0 and po0)"))


# ====================================================================== group C: tunnels
def tunnel_truth(name: str, path: str, reference: str, client_log: dict, servers: dict, *,
                 description: str, notes: str, capture_point: str, tunnel: dict,
                 tshark_args: tuple = ()) -> dict:
    def inner(p: str) -> dict:
        ex = tshark_args if p == path else ()
        conns = lt.tcp_connections(p, extra=ex)
        ws = lt.websocket_frames(p, extra=ex)
        out = []
        for st, c in sorted(conns.items()):
            c["http"] = lt.http_exchange(p, st, extra=ex)
            if ws.get(st):
                c["websocket"] = lt.ws_summary(ws[st], c["client"])
            out.append(c)
        return {"packets": lt.packet_count(p), "connections": out}
    frag = lt.fields(path, ["frame.number"], dfilter="ip.flags.mf == 1 or ip.frag_offset > 0")
    last_frag = lt.fields(path, ["frame.number"],
                          dfilter="ip.flags.mf == 0 and ip.frag_offset > 0")
    truth = {"capture": os.path.basename(path), "format": "pcap",
             "packets": lt.packet_count(path), "description": description, "notes": notes,
             "capture_point": capture_point, "snaplen": 262144, "keylog": None,
             "tunnel": tunnel,
             "outer_ip_fragment_frames": len(frag),
             "outer_fragmented_datagrams": len(last_frag),
             "tshark_args": list(tshark_args),
             "inner": inner(path)["connections"],
             "reference": {"capture": os.path.basename(reference), **inner(reference)}}
    sp = client_log.get("speech")
    if sp:
        sv = servers["deepgram"][0]
        truth["deepgram"] = {
            "request_id": sp.get("request_id"), "url": sp["url"],
            "client": {"audio_bytes_sent": sp["sent"]["audio_bytes"],
                       "binary_frames_sent": sp["sent"]["binary"],
                       "text_frames_sent": sp["sent"]["text"],
                       "first_audio_send_time": sp["first_audio_time"],
                       "last_audio_send_time": sp["last_audio_time"],
                       "received_types": sp["received"]["types"],
                       "close_sent": sp.get("close_sent"), "close_rcvd": sp.get("close_rcvd")},
            "server": {"request_id": sv["request_id"], "audio_bytes_received": sv["audio_bytes"],
                       "audio_sha256": sv["sha256"], "close_sent": sv["close_sent"]}}
    truth["oracle"] = oracle_version()
    lt.assert_no_secret(truth, name)
    return truth


def vxlan_record(workdir: str, outer: str, inner: str, inner_mtu: Optional[int],
                 seconds: float = 5.0, dstport: int = 4789) -> tuple[dict, dict]:
    """A plain ws:// speech stream between dglab-vxa and dglab-vxb across a real kernel vxlan;
    tcpdump on the underlay (u0) and on the vxlan device itself, in dglab-vxa."""
    lt.make_speech(workdir, seconds + 0.5)
    slog = os.path.join(workdir, "servers.json")
    nl.vxlan_up(inner_mtu, dstport)
    server = None
    try:
        os.makedirs(f"/etc/netns/{nl.VXA}", exist_ok=True)
        with open(f"/etc/netns/{nl.VXA}/hosts", "w") as f:
            f.write(f"127.0.0.1 localhost\n{nl.VX_INNER_B} api.deepgram.com\n")
        server = lt.Proc(nl.VXB, [PY, os.path.join(HERE, "lab_servers.py"), "--dg-ip",
                                  nl.VX_INNER_B, "--log", slog, "--max-seconds", "120"],
                         "servers", ready="servers ready")
        log = captured_run(workdir, [(nl.VXA, outer, "u0", {}), (nl.VXA, inner, "vxlan0", {})],
                           speech_only(LISTEN_PLAIN, None, seconds), ns=nl.VXA)
        server.stop()
        with open(slog) as f:
            servers = json.load(f)
    finally:
        if server:
            server.stop()
        nl.vxlan_down()
        shutil.rmtree(f"/etc/netns/{nl.VXA}", ignore_errors=True)
    if log["speech"].get("close_rcvd") != [1000, ""]:
        raise RuntimeError(f"vxlan stream did not end normally: {log['speech']}")
    return log, servers


VXLAN_INFO = {"udp_port": 4789, "vni": nl.VNI, "underlay": [nl.VX_UNDER_A, nl.VX_UNDER_B],
              "inner": [nl.VX_INNER_A, nl.VX_INNER_B]}


def vxlan_scenario(workdir: str, name: str, real: str, *, inner_mtu: Optional[int] = None,
                   dstport: int = 4789, tshark_args: tuple = ()) -> dict:
    """Record one vxlan stream; write <name> (underlay) and <name>_inner (the reference)."""
    outer, inner = (os.path.join(workdir, f"{n}.pcap") for n in (name, f"{name}_inner"))
    log, servers = vxlan_record(workdir, outer, inner, inner_mtu, dstport=dstport)
    o, i = ship(outer, f"{name}.pcap"), ship(inner, f"{name}_inner.pcap")
    desc = SCENARIOS[name][1]
    tunnel = dict(VXLAN_INFO, type="vxlan", real=True, udp_port=dstport)
    if inner_mtu:
        tunnel["inner_mtu"] = inner_mtu
    t = tunnel_truth(name, o, i, log, servers, description=desc, notes=real,
                     capture_point="dglab-vxa, u0 (underlay)", tunnel=tunnel,
                     tshark_args=tshark_args)
    write_json(name, t)
    write_json(f"{name}_inner", tunnel_truth(
        f"{name}_inner", i, i, log, servers, description=desc,
        notes=real + " Captured on the vxlan device in the same run: the reference.",
        capture_point="dglab-vxa, vxlan0 (decapsulated)", tunnel={"type": None}))
    return t


@scenario("vxlan",
          "A plain ws:// speech stream (5 s, CloseStream, close 1000) across a real Linux "
          "vxlan (VNI 4242, UDP 4789, inner MTU 1450) between two namespaces: vxlan.pcap is "
          "the underlay (outer Ethernet/IPv4/UDP/VXLAN), vxlan_inner.pcap the same run "
          "captured on the vxlan device (the decapsulated reference). vxlan_inner.pcap's "
          "frames are also the source of the rewrapped tunnels.",
          ["vxlan", "vxlan_inner"])
def s_vxlan(workdir: str) -> None:
    vxlan_scenario(workdir, "vxlan", "Real: a kernel vxlan device (ip link add type vxlan id "
                   "4242 dstport 4789) between two network namespaces joined by a veth "
                   "underlay; real websockets client and the Deepgram-like server on port 80 "
                   "inside; nothing rewritten.")


@scenario("vxlan_fragmented",
          "vxlan's stream with the vxlan device's MTU at 1500 over the 1500-byte underlay (DF "
          "not set on the outer header): every full-size inner segment leaves as two outer "
          "IPv4 fragments. Writes vxlan_fragmented (underlay) and vxlan_fragmented_inner "
          "(the vxlan device, reference).", ["vxlan_fragmented", "vxlan_fragmented_inner"])
def s_vxlan_fragmented(workdir: str) -> None:
    t = vxlan_scenario(workdir, "vxlan_fragmented", "Real: kernel vxlan (VNI 4242, UDP 4789) "
                       "with MTU 1500 over a 1500-byte veth underlay, df unset: the kernel "
                       "fragments the outer IPv4 packets; nothing rewritten.", inner_mtu=1500)
    if t["outer_ip_fragment_frames"] == 0:
        raise RuntimeError("no outer fragments: the vxlan device did not fragment")


@scenario("vxlan_8472",
          "vxlan's stream over a real Linux vxlan on UDP 8472 (the Linux kernel's historical "
          "default port, used by flannel and others) instead of 4789; writes vxlan_8472 "
          "(underlay) and vxlan_8472_inner (the vxlan device, reference).",
          ["vxlan_8472", "vxlan_8472_inner"])
def s_vxlan_8472(workdir: str) -> None:
    vxlan_scenario(workdir, "vxlan_8472", "Real: kernel vxlan (ip link add type vxlan id 4242 "
                   "dstport 8472) between two namespaces; nothing rewritten. Note: tshark does "
                   "not decode UDP 8472 as VXLAN by default (decode with -d "
                   "udp.port==8472,vxlan).", dstport=8472,
                   tshark_args=("-d", "udp.port==8472,vxlan"))


@scenario("tunnels_rewrapped",
          "vxlan_inner.pcap's real frames (same timestamps) rewrapped with scapy, because the "
          "lab kernel has no geneve, gretap, erspan, GTP, MPLS-routing, ipip or PPPoE devices: "
          "geneve (UDP 6081), gretap (GRE 0x6558), erspan_i / erspan_ii (GRE 0x88be) / "
          "erspan_iii (GRE 0x22eb), gtpu_vlan (802.1Q VLAN 100 / UDP 2152 / GTP-U), mpls "
          "(two labels), ipip (IPv4 in IPv4), pppoe (PPPoE session / PPP). Needs "
          "vxlan_inner.pcap (run the vxlan scenario first).",
          list(__import__("rewrap").TUNNELS))
def s_tunnels(workdir: str) -> None:
    import rewrap
    ref = os.path.join(OUT, "vxlan_inner.pcap")
    ref_truth = json.load(open(os.path.join(OUT, "vxlan_inner.truth.json")))
    log = {"speech": None}
    for kind, spec in rewrap.TUNNELS.items():
        dst = os.path.join(OUT, f"{kind}.pcap")
        counts = rewrap.rewrap(ref, dst, kind, nl.VX_INNER_A)
        os.chmod(dst, 0o644)
        notes = (f"REWRAPPED, not a kernel tunnel: every frame of vxlan_inner.pcap (real traffic "
                 f"captured on a real vxlan device) wrapped in {kind} by captures/lab/rewrap.py "
                 "(scapy), timestamps kept; outer addresses 10.99.60.1 (client side) / "
                 "10.99.60.2 are made up. ")
        if spec["layer"] == "L3":
            notes += ("This encapsulation carries IP, not Ethernet: the inner Ethernet header is "
                      "dropped and the reference's ARP frames are not carried, so frame numbers "
                      "differ from vxlan_inner.pcap; the WebSocket frames are the same.")
        else:
            notes += "Frame N here is frame N of vxlan_inner.pcap."
        t = tunnel_truth(kind, dst, ref, log, {}, description=SCENARIOS["tunnels_rewrapped"][1],
                         notes=notes, capture_point="rewrapped from vxlan_inner.pcap",
                         tunnel=dict(spec["info"], type=kind, real=False, **counts))
        t.pop("deepgram", None)
        t["deepgram"] = ref_truth.get("deepgram")
        write_json(kind, t)


@scenario("span_skew",
          "A real plain ws:// speech stream (10 s) through the lab (client -> fw -> "
          "api.deepgram.com:80), captured on fw's outside interface (span_skew_source.pcap); "
          "span_skew.pcap is the same file with every server-to-client packet 100 ms later "
          "and the packets reordered by the new timestamps, as from a span port whose two "
          "directions are timestamped apart: each server message appears after the client "
          "already ACKed it.", ["span_skew", "span_skew_source"])
def s_span_skew(workdir: str) -> None:
    import rewrap
    lt.make_speech(workdir, 10.5)
    src = os.path.join(workdir, "span_skew_source.pcap")
    with Lab(workdir) as lab:
        log = captured_run(workdir, [(nl.FW, src, "fo0", {"filt": "tcp port 80"})],
                           dict(speech_only(LISTEN_PLAIN, None, 10.0), dns=["api.deepgram.com"]))
        servers = lab.stop_servers()
    if log["speech"].get("close_rcvd") != [1000, ""]:
        raise RuntimeError(f"stream did not end normally: {log['speech']}")
    s = ship(src, "span_skew_source.pcap")
    dst = os.path.join(OUT, "span_skew.pcap")
    counts = rewrap.skew(s, dst, nl.DG_IP, 0.1)
    os.chmod(dst, 0o644)
    real = ("Real traffic (websockets client, fake_deepgram.py on port 80, NAT by fw), "
            "captured with tcpdump on fw fo0, filter 'tcp port 80'; nothing rewritten.")
    desc = SCENARIOS["span_skew"][1]
    write_json("span_skew_source", tunnel_truth(
        "span_skew_source", s, s, log, servers, description=desc, notes=real,
        capture_point="fw namespace, fo0, tcp port 80", tunnel={"type": None}))
    t = tunnel_truth("span_skew", dst, s, log, servers, description=desc,
                     notes="BUILT from span_skew_source.pcap (real) by captures/lab/rewrap.py: "
                           "server-to-client packets (src 172.31.10.20) shifted +0.100 s, file "
                           "reordered by timestamp (stable); packet bytes unchanged. Every byte "
                           "of both directions is in the file.",
                     capture_point="derived from span_skew_source.pcap",
                     tunnel={"type": None})
    t["skew"] = dict(counts, shifted="server-to-client", shift_seconds=0.1)
    write_json("span_skew", t)


# ====================================================================== main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", default=[], help="scenario name (repeatable)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if args.list:
        for name, (_fn, desc, outs) in SCENARIOS.items():
            print(f"{name:22} -> {', '.join(outs)}\n    {desc}")
        return
    if os.geteuid() != 0:
        sys.exit("record_lab.py: needs root (network namespaces, tcpdump)")
    todo = args.only or list(SCENARIOS)
    for name in todo:
        if name not in SCENARIOS:
            sys.exit(f"unknown scenario {name!r} (see --list)")
    for name in todo:
        fn, _desc, outs = SCENARIOS[name]
        workdir = tempfile.mkdtemp(prefix=f"lab-{name}-")
        t = time.time()
        print(f"== {name}", flush=True)
        try:
            fn(workdir)
        finally:
            nl.down()
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        print(f"   wrote {', '.join(outs)} in {time.time() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
