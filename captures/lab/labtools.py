"""Helpers for record_lab.py: lab PKI, speech audio, services, captures and tshark truth.

Truth values come from two independent sides: the clients' and servers' own logs (what they
sent and received) and tshark's dissection of the written capture file (frame numbers,
streams, records, WebSocket frames).  tests/test_lab_truth.py re-derives a few of them.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from typing import Any, Iterable, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import oracle  # noqa: E402  (tshark helpers shared with the loopback fixtures)
from netlab import nsexec  # noqa: E402

API_KEY = "dgtest_0123456789abcdef0123456789abcdef"
OPCODES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}

SPEECH_TEXT = (
    "Good morning. This is a recorded test call for the network lab. The firewall team wants "
    "to know whether the audio left the building, where it went, and when it stopped. "
    "We are reading a short weather report. Tomorrow will be cloudy in the morning, with a "
    "light wind from the west, and sunny spells in the afternoon. Temperatures will reach "
    "fourteen degrees by noon and fall to six degrees overnight. Please call back if the "
    "line drops. Thank you for listening, and goodbye.")


# ====================================================================== PKI
def make_pki(directory: str, names: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    """A throwaway lab CA and one leaf certificate per entry {label: [dns names]}.

    Returns {"ca": (cert, key), label: (cert, key), ...} as file paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = _dt.datetime.now(_dt.timezone.utc)

    def write(label: str, cert, key) -> tuple[str, str]:
        c, k = os.path.join(directory, f"{label}.crt"), os.path.join(directory, f"{label}.key")
        with open(c, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(k, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return c, k

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dgcap network lab CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - _dt.timedelta(hours=1))
          .not_valid_after(now + _dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": write("ca", ca, ca_key)}
    for label, dns in names.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _dt.timedelta(hours=1))
                .not_valid_after(now + _dt.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns]),
                               critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        out[label] = write(label, cert, key)
    return out


# ====================================================================== audio
def make_speech(directory: str, seconds: float) -> str:
    """Real synthetic speech: espeak-ng -> sox -> linear16 16 kHz mono (raw), >= seconds."""
    wav = os.path.join(directory, "speech.wav")
    raw = os.path.join(directory, "speech.raw")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", wav, SPEECH_TEXT],
                   check=True, capture_output=True, timeout=60)
    subprocess.run(["sox", wav, "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer",
                    "-t", "raw", raw], check=True, capture_output=True, timeout=60)
    have = os.path.getsize(raw) / 32000
    if have < seconds:
        raise RuntimeError(f"speech is only {have:.1f} s, need {seconds}")
    return raw


# ====================================================================== processes
class Proc:
    """A process in a namespace; stopped with SIGTERM (then SIGKILL) by stop()."""

    def __init__(self, ns: str, argv: Sequence[str], name: str, ready: Optional[str] = None,
                 ready_timeout: float = 15, stdout_lines: Optional[list] = None):
        self.name = name
        self.lines: list[str] = [] if stdout_lines is None else stdout_lines
        self.proc = subprocess.Popen(nsexec(ns, argv), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.ready = threading.Event()
        self.marker = ready

        def drain() -> None:
            for line in self.proc.stdout:
                self.lines.append(line.rstrip())
                if self.marker and self.marker in line:
                    self.ready.set()
        self.thread = threading.Thread(target=drain, daemon=True)
        self.thread.start()
        if ready and not self.ready.wait(ready_timeout):
            self.stop()
            raise RuntimeError(f"{name} did not start: {self.lines[-10:]}")

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        self.thread.join(5)
        return rc

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.thread.join(5)


class Capture(Proc):
    """tcpdump in a namespace.  stop() checks that the kernel dropped nothing."""

    def __init__(self, ns: str, path: str, iface: str, *, snaplen: int = 0,
                 filt: Optional[str] = None):
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        argv = ["tcpdump", "-i", iface, "-n", "-U", "-Z", "root", "-s", str(snaplen), "-w", path]
        if filt:
            argv.append(filt)
        super().__init__(ns, argv, f"tcpdump {os.path.basename(path)}", ready="listening on")
        deadline = time.time() + 5
        while time.time() < deadline and (not os.path.exists(path) or os.path.getsize(path) == 0):
            time.sleep(0.05)
        time.sleep(0.3)

    def stop(self, sig: int = signal.SIGINT) -> None:
        super().stop(sig)
        text = "\n".join(self.lines)
        m = re.search(r"(\d+) packets? dropped by kernel", text)
        if m is None or int(m.group(1)) != 0:
            raise RuntimeError(f"capture {self.path} may be incomplete: {text}")
        os.chmod(self.path, 0o644)


# ====================================================================== tshark
def fields(path: str, names: list[str], dfilter: Optional[str] = None,
           keylog: Optional[str] = None, extra: Iterable[str] = ()) -> list[dict]:
    args = list(extra)
    if keylog:
        args += ["-o", f"tls.keylog_file:{keylog}"]
    rows = oracle.tshark_fields(path, names, dfilter=dfilter, extra=args)
    return [dict(zip(names, r + [""] * (len(names) - len(r)))) for r in rows]


def packet_count(path: str) -> int:
    return oracle.count_packets(path)


def endpoint(ip_: str, port: str | int) -> str:
    return f"[{ip_}]:{port}" if ":" in ip_ else f"{ip_}:{port}"


def last(v: str) -> str:
    """The innermost of a comma-aggregated field (tunnels: outer first, inner last)."""
    return v.split(",")[-1] if v else v


def tcp_connections(path: str, extra: Iterable[str] = ()) -> dict[int, dict]:
    """Every TCP stream: client (SYN sender, else the side the caller knows), frames, bytes,
    and how it ended (first FIN or RST, which side, which frame; later RSTs too)."""
    rows = fields(path, ["frame.number", "frame.time_epoch", "tcp.stream", "ip.src", "ip.dst",
                         "tcp.srcport", "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack",
                         "tcp.flags.fin", "tcp.flags.reset", "tcp.len"], dfilter="tcp",
                  extra=extra)
    conns: dict[int, dict] = {}
    for r in rows:
        st = int(last(r["tcp.stream"]))
        src = endpoint(last(r["ip.src"]), last(r["tcp.srcport"]))
        dst = endpoint(last(r["ip.dst"]), last(r["tcp.dstport"]))
        no, t = int(r["frame.number"]), float(r["frame.time_epoch"])
        c = conns.get(st)
        if c is None:
            syn_only = last(r["tcp.flags.syn"]) == "1" and last(r["tcp.flags.ack"]) == "0"
            c = conns[st] = {"tcp_stream": st, "client": src, "server": dst,
                             "syn_seen": syn_only, "first_frame": no, "first_time": t,
                             "packets": 0, "client_payload_bytes": 0,
                             "server_payload_bytes": 0, "ends": []}
            if not syn_only and int(last(r["tcp.srcport"])) < int(last(r["tcp.dstport"])):
                c["client"], c["server"] = dst, src  # mid-stream: the low port is the server
        c["packets"] += 1
        c["last_frame"], c["last_time"] = no, t
        side = "client" if src == c["client"] else "server"
        c[f"{side}_payload_bytes"] += int(last(r["tcp.len"]) or 0)
        for flag, kind in (("tcp.flags.fin", "fin"), ("tcp.flags.reset", "rst")):
            if last(r[flag]) == "1":
                c["ends"].append({"kind": kind, "by": side, "frame": no})
    for c in conns.values():
        ends = c.pop("ends")
        first = ends[0] if ends else None
        c["tcp_end"] = first["kind"] if first else "open"
        c["tcp_end_by"] = first["by"] if first else None
        c["tcp_end_frame"] = first["frame"] if first else None
        c["fins"] = [e for e in ends if e["kind"] == "fin"]
        c["rsts"] = [e for e in ends if e["kind"] == "rst"]
        c["duration"] = round(c["last_time"] - c["first_time"], 6)
    return conns


def tls_facts(path: str, conns: dict[int, dict], extra: Iterable[str] = ()) -> None:
    """Keyless TLS facts per stream: ClientHello frame + SNI, ALPN chosen, and the client's
    records of outer content type 23 (count, bytes, first/last time) -- what a network team
    sees without keys.  TLS 1.3: the client's encrypted Finished is one of those records;
    TLS 1.2 (nginx here): the encrypted Finished is content type 22 and is not counted."""
    rows = fields(path, ["frame.number", "frame.time_epoch", "tcp.stream", "ip.src",
                         "tcp.srcport", "tls.record.content_type", "tls.record.opaque_type",
                         "tls.record.length", "tls.record.version",
                         "tls.handshake.type", "tls.handshake.extensions_server_name",
                         "tls.handshake.extensions_alpn_str"], dfilter="tls", extra=extra)
    for r in rows:
        c = conns.get(int(last(r["tcp.stream"])))
        if c is None:
            continue
        tls = c.setdefault("tls", {"client_hello_frame": None, "sni": None,
                                   "alpn_offered": None, "alpn": None,
                                   "client_appdata_records": 0, "client_appdata_bytes": 0,
                                   "first_client_appdata_time": None,
                                   "last_client_appdata_time": None,
                                   "first_client_appdata_frame": None,
                                   "last_client_appdata_frame": None,
                                   "server_appdata_records": 0, "server_appdata_bytes": 0})
        no, t = int(r["frame.number"]), float(r["frame.time_epoch"])
        hs = r["tls.handshake.type"].split(",") if r["tls.handshake.type"] else []
        if "1" in hs and tls["client_hello_frame"] is None:
            tls["client_hello_frame"] = no
            tls["sni"] = r["tls.handshake.extensions_server_name"] or None
            tls["alpn_offered"] = r["tls.handshake.extensions_alpn_str"] or None
        if "2" in hs and r["tls.handshake.extensions_alpn_str"]:  # TLS 1.2: in the clear
            tls["alpn"] = r["tls.handshake.extensions_alpn_str"]
        from_client = endpoint(last(r["ip.src"]), last(r["tcp.srcport"])) == c["client"]
        # Without keys tshark lists cleartext records (content_type) and TLS 1.3 encrypted
        # records (opaque_type) in two fields; within one packet the cleartext ones
        # (handshake, ChangeCipherSpec) come first.
        types = [ty for f in ("tls.record.content_type", "tls.record.opaque_type")
                 for ty in (r[f].split(",") if r[f] else [])]
        lens = r["tls.record.length"].split(",") if r["tls.record.length"] else []
        for ty, ln in zip(types, lens):
            if ty != "23":
                continue
            if from_client:
                tls["client_appdata_records"] += 1
                tls["client_appdata_bytes"] += int(ln)
                if tls["first_client_appdata_time"] is None:
                    tls["first_client_appdata_time"] = t
                    tls["first_client_appdata_frame"] = no
                tls["last_client_appdata_time"] = t
                tls["last_client_appdata_frame"] = no
            else:
                tls["server_appdata_records"] += 1
                tls["server_appdata_bytes"] += int(ln)


def tls_decrypted_facts(path: str, conns: dict[int, dict], keylog: str,
                        extra: Iterable[str] = ()) -> None:
    """With the key log: the client's records whose (inner) content type is application data
    (TLS 1.3 Finished and close_notify excluded) -- what a keyed analysis counts."""
    rows = fields(path, ["frame.number", "frame.time_epoch", "tcp.stream", "ip.src",
                         "tcp.srcport", "tls.record.content_type", "tls.record.length"],
                  dfilter="tls", keylog=keylog, extra=extra)
    for r in rows:
        c = conns.get(int(last(r["tcp.stream"])))
        if c is None or "tls" not in c:
            continue
        d = c["tls"].setdefault("decrypted", {"client_appdata_records": 0,
                                              "client_appdata_bytes": 0,
                                              "first_client_appdata_frame": None,
                                              "last_client_appdata_frame": None,
                                              "first_client_appdata_time": None,
                                              "last_client_appdata_time": None})
        if endpoint(last(r["ip.src"]), last(r["tcp.srcport"])) != c["client"]:
            continue
        types = r["tls.record.content_type"].split(",") if r["tls.record.content_type"] else []
        lens = r["tls.record.length"].split(",") if r["tls.record.length"] else []
        no, t = int(r["frame.number"]), float(r["frame.time_epoch"])
        for ty, ln in zip(types, lens):
            if ty == "23":
                d["client_appdata_records"] += 1
                d["client_appdata_bytes"] += int(ln)
                if d["first_client_appdata_frame"] is None:
                    d["first_client_appdata_frame"], d["first_client_appdata_time"] = no, t
                d["last_client_appdata_frame"], d["last_client_appdata_time"] = no, t


def dns_answers(path: str, extra: Iterable[str] = ()) -> list[dict]:
    rows = fields(path, ["frame.number", "frame.time_epoch", "udp.stream", "tcp.stream",
                         "dns.id", "dns.qry.name", "dns.qry.type", "dns.cname", "dns.a",
                         "dns.aaaa"], dfilter="dns.flags.response == 1", extra=extra)
    out = []
    for r in rows:
        out.append({"frame": int(r["frame.number"]), "time": float(r["frame.time_epoch"]),
                    "transport": "tcp" if r["tcp.stream"] else "udp",
                    "id": int(r["dns.id"], 0),
                    "name": r["dns.qry.name"], "qtype": int(r["dns.qry.type"]),
                    "cnames": r["dns.cname"].split(",") if r["dns.cname"] else [],
                    "a": r["dns.a"].split(",") if r["dns.a"] else [],
                    "aaaa": r["dns.aaaa"].split(",") if r["dns.aaaa"] else []})
    return out


def websocket_frames(path: str, keylog: Optional[str] = None,
                     extra: Iterable[str] = ()) -> dict[int, list[dict]]:
    """WebSocket frames per tcp.stream as tshark dissects them (with the key log for TLS)."""
    cmd = ["tshark", "-n", "-r", path, "-T", "json", "--no-duplicate-keys",
           "-J", "frame ip ipv6 tcp websocket", "-Y", "websocket", *extra]
    if keylog:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if res.returncode:
        raise RuntimeError(f"tshark: {res.stderr}")
    out: dict[int, list[dict]] = defaultdict(list)
    for p in json.loads(res.stdout or "[]"):
        L = p["_source"]["layers"]
        tcp = L["tcp"][-1] if isinstance(L["tcp"], list) else L["tcp"]
        ipl = L.get("ip") or L.get("ipv6")
        ipl = ipl[-1] if isinstance(ipl, list) else ipl
        src = endpoint(oracle.find(ipl, "ip.src") or oracle.find(ipl, "ipv6.src"),
                       tcp["tcp.srcport"])
        for w in oracle._as_list(L.get("websocket")):
            f = oracle._ws(w)
            out[int(tcp["tcp.stream"])].append({
                "frame": int(L["frame"]["frame.number"]),
                "time": float(L["frame"]["frame.time_epoch"]), "src": src, **f})
    return out


def ws_summary(frames: list[dict], client: str) -> dict:
    """Frames per opcode and direction, payload bytes, close frames, first/last frame."""
    out: dict[str, Any] = {}
    for side in ("client", "server"):
        mine = [f for f in frames if (f["src"] == client) == (side == "client")]
        counts = Counter(OPCODES.get(f["opcode"], "other") for f in mine)
        d = {k: counts.get(k, 0) for k in ("text", "binary", "continuation", "close", "ping",
                                           "pong")}
        d["payload_bytes"] = sum(f["len"] for f in mine)
        d["binary_payload_bytes"] = sum(f["len"] for f in mine if f["opcode"] == 2)
        d["first_frame"] = mine[0]["frame"] if mine else None
        d["last_frame"] = mine[-1]["frame"] if mine else None
        if side == "client":
            audio = [f for f in mine if f["opcode"] == 2]
            d["first_binary_time"] = audio[0]["time"] if audio else None
            d["last_binary_time"] = audio[-1]["time"] if audio else None
            d["last_binary_frame"] = audio[-1]["frame"] if audio else None
        closes = [f for f in mine if f["opcode"] == 8]
        d["close"] = ({"frame": closes[0]["frame"], "code": closes[0]["close_code"],
                       "reason": closes[0]["close_reason"] or ""} if closes else None)
        out[side] = d
    return out


def http_exchange(path: str, stream: int, keylog: Optional[str] = None,
                  extra: Iterable[str] = ()) -> dict:
    """The first HTTP request and response of a stream (CONNECT or GET), as tshark sees them;
    request_bytes = length of the request head (what precedes a CONNECT tunnel's bytes)."""
    ex = list(extra) + ["-Y", f"tcp.stream == {stream} and http"]
    rows = fields(path, ["frame.number", "http.request.method", "http.request.uri",
                         "http.response.code", "http.response.phrase", "http.host",
                         "tcp.len"], keylog=keylog, extra=ex)
    out: dict[str, Any] = {}
    for r in rows:
        if r["http.request.method"] and "request_frame" not in out:
            out.update(request_frame=int(r["frame.number"]),
                       method=r["http.request.method"].split(",")[0],
                       target=r["http.request.uri"].split(",")[0], host=r["http.host"] or None)
            if out["method"] == "CONNECT":
                out["request_bytes"] = int(last(r["tcp.len"]))
        elif r["http.response.code"] and "response_frame" not in out:
            out.update(response_frame=int(r["frame.number"]),
                       status=int(r["http.response.code"].split(",")[0]),
                       reason=r["http.response.phrase"].split(",")[0])
    return out


def assert_no_secret(obj: Any, where: str) -> None:
    if API_KEY in json.dumps(obj):
        raise RuntimeError(f"{where}: the API key would be written in cleartext")


def packet_first_time(path: str) -> float:
    rows = fields(path, ["frame.time_epoch"], extra=["-c", "1"])
    return float(rows[0]["frame.time_epoch"])
