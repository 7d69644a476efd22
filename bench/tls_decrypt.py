"""Decryption throughput: TlsConnection vs scapy's TLS layer on the same kind of traffic.

    python -m bench.tls_decrypt [--mb 100] [--scapy-mb 2] [--suites aes128gcm,chacha20]
                                 [--records 16384,3000] [--no-scapy]

Traffic is real: a TLS 1.3 session between two in-memory ssl.SSLObjects (OpenSSL), the suite
forced with an OPENSSL_CONF `Ciphersuites` line in a child process (Python's ssl can't pick
TLS 1.3 suites).  The client streams `--mb` of application data written in `--records`-sized
pieces (one record each), like audio to Deepgram.  We time TlsConnection.feed() over the
client->server bytes cut into 1448-byte TCP segments (framing, handshake and decryption
included).  scapy gets a pcap of a smaller session of the same shape, with the key log
(conf.tls_nss_filename), and is timed over sniff(offline=..., session=TCPSession); both report
MB/s of decrypted application data, and both are checked to have decrypted all of it.
"""
from __future__ import annotations

import argparse
import os
import pickle
import ssl
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as `python bench/NAME.py`: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support.tls_fixtures import TLS13_SUITE_CONF, self_signed  # noqa: E402

SUITES = {"aes128gcm": "TLS_AES_128_GCM_SHA256", "aes256gcm": "TLS_AES_256_GCM_SHA384",
          "chacha20": "TLS_CHACHA20_POLY1305_SHA256"}
MSS = 1448


def generate(total_bytes: int, record_size: int, directory: str) -> dict:
    """One TLS 1.3 session; returns {wire: [(direction, bytes)], keylog: str, sent: int, cipher}."""
    cert_path, key_path = self_signed(directory, "bench.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    client_context.minimum_version = ssl.TLSVersion.TLSv1_3
    keylog_path = os.path.join(directory, "session.keys")
    client_context.keylog_filename = keylog_path
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(c_in, c_out, server_hostname="bench.test")
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    wire = []

    def pump():
        for direction, source, sink in ((0, c_out, s_in), (1, s_out, c_in)):
            data = source.read()
            if data:
                wire.append((direction, data))
                sink.write(data)

    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        pump()
    piece = bytes(range(256)) * (record_size // 256 + 1)
    sent = 0
    while sent < total_bytes:
        sent += client.write(piece[:record_size])
        if len(wire) % 64 == 0:
            pump()
            try:
                while server.read(1 << 20):
                    pass
            except ssl.SSLWantReadError:
                pass
    pump()
    with open(keylog_path) as f:
        keylog = f.read()
    return {"wire": wire, "keylog": keylog, "sent": sent, "cipher": client.cipher()[0]}


def _generate_in_child(suite: str, total_bytes: int, record_size: int, directory: str) -> dict:
    conf_path = os.path.join(directory, "openssl.cnf")
    with open(conf_path, "w") as f:
        f.write(TLS13_SUITE_CONF.format(suite=suite))
    out_path = os.path.join(directory, "session.pickle")
    env = dict(os.environ, OPENSSL_CONF=conf_path)
    subprocess.run([sys.executable, os.path.abspath(__file__), "_generate", str(total_bytes),
                    str(record_size), directory, out_path], check=True, env=env)
    with open(out_path, "rb") as f:
        return pickle.load(f)


def _segments(wire, direction: int):
    for d, data in wire:
        if d == direction:
            for pos in range(0, len(data), MSS):
                yield data[pos:pos + MSS]


def time_ours(session: dict) -> tuple[float, int]:
    from analyzer.tls import KeyLog, TlsConnection
    keylog = KeyLog()
    keylog.load_text(session["keylog"])
    client_segments = list(_segments(session["wire"], 0))
    server_segments = list(_segments(session["wire"], 1))
    conn = TlsConnection(keylog)
    decrypted = 0
    start = time.perf_counter()
    # the server's handshake flight first (it is tiny), then the client's stream
    for frame, segment in enumerate(server_segments):
        conn.feed(1, segment, frame, 0.0)
    for frame, segment in enumerate(client_segments):
        for event in conn.feed(0, segment, frame, 0.0):
            if event[0] == "plaintext":
                decrypted += len(event[2])
    elapsed = time.perf_counter() - start
    return elapsed, decrypted


def _write_pcap(session: dict, path: str) -> None:
    from scapy.all import IP, TCP, Ether, wrpcap
    seq = [1000, 5000]
    ports = [(40000, 443), (443, 40000)]
    addresses = [("10.0.0.1", "10.0.0.2"), ("10.0.0.2", "10.0.0.1")]
    packets = []
    for direction, data in session["wire"]:
        for pos in range(0, len(data), MSS):
            chunk = data[pos:pos + MSS]
            src, dst = addresses[direction]
            sport, dport = ports[direction]
            packets.append(Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="PA",
                                                                  seq=seq[direction], ack=seq[1 - direction])
                           / chunk)
            seq[direction] += len(chunk)
    wrpcap(path, packets)


def time_scapy(session: dict, directory: str) -> tuple[float, int]:
    from scapy.all import TCPSession, conf, load_layer, sniff
    load_layer("tls")
    from scapy.layers.tls.record import TLSApplicationData
    pcap_path = os.path.join(directory, "scapy.pcap")
    keys_path = os.path.join(directory, "scapy.keys")
    _write_pcap(session, pcap_path)
    with open(keys_path, "w") as f:
        f.write(session["keylog"])
    conf.tls_session_enable = True
    conf.tls_nss_filename = keys_path
    conf.tls_nss_keys = None
    decrypted = 0
    start = time.perf_counter()
    packets = sniff(offline=pcap_path, session=TCPSession)
    for packet in packets:
        layer = packet.getlayer(TLSApplicationData)
        while layer is not None:
            if isinstance(layer, TLSApplicationData):
                decrypted += len(layer.data)
            layer = layer.payload if layer.payload else None
    elapsed = time.perf_counter() - start
    return elapsed, decrypted


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100.0)
    parser.add_argument("--scapy-mb", type=float, default=2.0)
    parser.add_argument("--suites", default="aes128gcm,chacha20")
    parser.add_argument("--records", default="16384,3000")
    parser.add_argument("--no-scapy", action="store_true")
    args = parser.parse_args(argv)
    for suite_key in args.suites.split(","):
        for record_size in (int(r) for r in args.records.split(",")):
            with tempfile.TemporaryDirectory(prefix="dgcap-bench-") as directory:
                session = _generate_in_child(SUITES[suite_key], int(args.mb * 1e6), record_size, directory)
                assert session["cipher"] == SUITES[suite_key], session["cipher"]
                elapsed, decrypted = time_ours(session)
                assert decrypted == session["sent"], (decrypted, session["sent"])
                line = (f"{SUITES[suite_key]:30} records {record_size:5} B  ours: {decrypted / 1e6:7.1f} MB "
                        f"in {elapsed:6.2f} s = {decrypted / 1e6 / elapsed:7.1f} MB/s")
                if not args.no_scapy:
                    small = _generate_in_child(SUITES[suite_key], int(args.scapy_mb * 1e6), record_size, directory)
                    s_elapsed, s_decrypted = time_scapy(small, directory)
                    line += (f"   scapy: {s_decrypted / 1e6:5.1f} of {small['sent'] / 1e6:.1f} MB in "
                             f"{s_elapsed:6.2f} s = {s_decrypted / 1e6 / s_elapsed:6.2f} MB/s")
                print(line, flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "_generate":
        result = generate(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        with open(sys.argv[5], "wb") as f:
            pickle.dump(result, f)
    else:
        main()
