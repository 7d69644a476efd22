#!/usr/bin/env python3
"""Build and tear down dgcap's network lab: Linux network namespaces joined by veth pairs.

    sudo python captures/lab/netlab.py up      # build (for poking around by hand)
    sudo python captures/lab/netlab.py down    # remove everything this module creates

Topology (every address exists only inside these namespaces)::

    dglab-client  c0 10.99.1.10/24 (+ .11, a second client host)
          |  veth
    dglab-fw      fi0 10.99.1.1/24   fp0 10.99.2.1/24   fo0 172.31.0.1/24
          |  routes between inside networks; nftables MASQUERADE out of fo0 (the egress
          |  capture point: tcpdump on fo0 sees traffic after NAT, -i any sees both sides)
    dglab-proxy   pi0 10.99.2.10/24 (inside leg, via fw)   po0 172.31.1.10/24 (own uplink)
    dglab-inet    ie0 172.31.0.2/24  ip0 172.31.1.1/24 and the "internet" servers:
                  172.31.10.53 dnsmasq, 172.31.10.20 api.deepgram.com (fake Deepgram),
                  172.31.20.10-13 nginx (www/cdn/static/img.example.test),
                  172.31.30.5 chat.example.test (WebSocket echo)

    dglab-vxa / dglab-vxb   underlay veth 10.99.50.1/2; vxlan0 VNI 4242 UDP 4789,
                            inner 192.168.77.1/2 (built by vxlan_up(), only for tunnels)

Offloads (TSO/GSO/GRO, checksum) are switched off on every interface so that tcpdump sees
the packets that really cross the wire, not 64 KB super-segments.  Resolver: files under
/etc/netns/<ns>/resolv.conf (bind-mounted by `ip netns exec`) point at the lab DNS.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Sequence

PREFIX = "dglab-"
CLIENT, FW, PROXY, INET = (PREFIX + n for n in ("client", "fw", "proxy", "inet"))
VXA, VXB = PREFIX + "vxa", PREFIX + "vxb"
ALL_NS = (CLIENT, FW, PROXY, INET, VXA, VXB)

CLIENT_IP, CLIENT_IP2 = "10.99.1.10", "10.99.1.11"
FW_INSIDE, FW_PROXYSIDE, FW_OUTSIDE = "10.99.1.1", "10.99.2.1", "172.31.0.1"
PROXY_IN, PROXY_OUT = "10.99.2.10", "172.31.1.10"
INET_LINK, INET_PROXYLINK = "172.31.0.2", "172.31.1.1"
DNS_IP = "172.31.10.53"
DG_IP, DG_IP6 = "172.31.10.20", "fd00:99:10::20"
CHAT_IP = "172.31.30.5"
WEB = {"www.example.test": "172.31.20.10", "cdn.example.test": "172.31.20.11",
       "static.example.test": "172.31.20.12", "img.example.test": "172.31.20.13"}
# api.deepgram.com is reached through a CNAME chain, as behind a real load balancer/CDN.
DG_CNAMES = [("api.deepgram.com", "api.lb.deepgram.com"),
             ("api.lb.deepgram.com", "edge-1.dg-lab.example.test")]
DG_EDGE = "edge-1.dg-lab.example.test"
VX_UNDER_A, VX_UNDER_B = "10.99.50.1", "10.99.50.2"
VX_INNER_A, VX_INNER_B = "192.168.77.1", "192.168.77.2"
VNI = 4242


def sh(*args: str, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r


def ip(ns: str, *args: str) -> None:
    sh("ip", "-n", ns, *args)


def nsexec(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def quiet_offloads(ns: str, dev: str) -> None:
    # tx/rx checksum and segmentation offloads off: captured packets are real wire packets.
    sh("ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
       ns=ns, check=False)


def veth(ns_a: str, dev_a: str, addr_a: str, ns_b: str, dev_b: str, addr_b: str) -> None:
    sh("ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b,
       "netns", ns_b)
    for ns, dev, addr in ((ns_a, dev_a, addr_a), (ns_b, dev_b, addr_b)):
        ip(ns, "addr", "add", addr, "dev", dev)
        ip(ns, "link", "set", dev, "up")
        quiet_offloads(ns, dev)


def add_ns(name: str) -> None:
    sh("ip", "netns", "add", name)
    ip(name, "link", "set", "lo", "up")
    # IPv4 only on the wire: no router solicitations / MLD reports in the captures.
    for key in ("all", "default"):
        sh("sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1", ns=name)


def resolver(ns: str) -> None:
    d = f"/etc/netns/{ns}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/resolv.conf", "w") as f:
        f.write(f"nameserver {DNS_IP}\noptions timeout:2 attempts:2\n")
    with open(f"{d}/hosts", "w") as f:  # nothing from the host's /etc/hosts leaks in
        f.write("127.0.0.1 localhost\n")


def down() -> None:
    """Remove every lab namespace (idempotent; also cleans a half-built lab)."""
    existing = set(sh("ip", "netns", "list", check=False).stdout.split())
    for ns in ALL_NS:
        if ns in existing:
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)


def up() -> None:
    """Build client / fw / proxy / inet.  Raises (after tearing down) on any failure."""
    down()
    try:
        for ns in (CLIENT, FW, PROXY, INET):
            add_ns(ns)
        veth(CLIENT, "c0", f"{CLIENT_IP}/24", FW, "fi0", f"{FW_INSIDE}/24")
        ip(CLIENT, "addr", "add", f"{CLIENT_IP2}/24", "dev", "c0")
        veth(PROXY, "pi0", f"{PROXY_IN}/24", FW, "fp0", f"{FW_PROXYSIDE}/24")
        veth(FW, "fo0", f"{FW_OUTSIDE}/24", INET, "ie0", f"{INET_LINK}/24")
        veth(PROXY, "po0", f"{PROXY_OUT}/24", INET, "ip0", f"{INET_PROXYLINK}/24")
        ip(CLIENT, "route", "add", "default", "via", FW_INSIDE)
        ip(FW, "route", "add", "172.31.0.0/16", "via", INET_LINK)
        ip(PROXY, "route", "add", "10.99.0.0/16", "via", FW_PROXYSIDE)
        ip(PROXY, "route", "add", "default", "via", INET_PROXYLINK)
        for addr in [DNS_IP, DG_IP, CHAT_IP, *WEB.values()]:
            ip(INET, "addr", "add", f"{addr}/32", "dev", "ie0")
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=FW)
        nat = ("table ip lab_nat {\n chain post {\n  type nat hook postrouting priority 100;\n"
               '  oifname "fo0" ip saddr 10.99.0.0/16 masquerade\n }\n}\n')
        r = subprocess.run(nsexec(FW, ["nft", "-f", "-"]), input=nat, text=True,
                           capture_output=True, timeout=30)
        if r.returncode:
            raise RuntimeError(f"nft: {r.stderr}")
        for ns in (CLIENT, PROXY):
            resolver(ns)
    except BaseException:
        down()
        raise


def vxlan_up(inner_mtu: int | None = None, dstport: int = 4789) -> None:
    """Two namespaces with a real kernel vxlan (VNI 4242, UDP dstport) over a veth underlay.

    inner_mtu=1500 over the 1500-byte underlay makes the kernel fragment the outer IPv4
    packets (the vxlan device is not bound to a lower device, so its MTU may exceed
    underlay-50; DF is not set on the outer header, nor on the inner packets).
    """
    for ns in (VXA, VXB):
        if ns in sh("ip", "netns", "list", check=False).stdout.split():
            sh("ip", "netns", "del", ns, check=False)
    try:
        for ns in (VXA, VXB):
            add_ns(ns)
        veth(VXA, "u0", f"{VX_UNDER_A}/24", VXB, "u0", f"{VX_UNDER_B}/24")
        for ns, local, remote, inner in ((VXA, VX_UNDER_A, VX_UNDER_B, VX_INNER_A),
                                         (VXB, VX_UNDER_B, VX_UNDER_A, VX_INNER_B)):
            ip(ns, "link", "add", "vxlan0", "type", "vxlan", "id", str(VNI), "dstport",
               str(dstport), "local", local, "remote", remote, "df", "unset")
            # Without a lower device the vxlan MTU defaults to 1500: say 1450 (1500 - 50)
            # unless the caller wants oversized inner packets.
            ip(ns, "link", "set", "vxlan0", "mtu", str(inner_mtu or 1450))
            if inner_mtu:
                # Inner packets without DF: otherwise the vxlan device answers a too-big
                # inner packet with ICMP "fragmentation needed" and TCP shrinks its segments.
                sh("sysctl", "-qw", "net.ipv4.ip_no_pmtu_disc=1", ns=ns)
            ip(ns, "addr", "add", f"{inner}/24", "dev", "vxlan0")
            ip(ns, "link", "set", "vxlan0", "up")
            quiet_offloads(ns, "vxlan0")
            if inner_mtu:
                # A locked route MTU ignores the PMTU the vxlan device learns from its
                # underlay (else TCP shrinks to 1450-byte packets after the first fragments).
                ip(ns, "route", "replace", "192.168.77.0/24", "dev", "vxlan0", "mtu", "lock",
                   str(inner_mtu))
    except BaseException:
        for ns in (VXA, VXB):
            sh("ip", "netns", "del", ns, check=False)
        raise


def vxlan_down() -> None:
    for ns in (VXA, VXB):
        sh("ip", "netns", "del", ns, check=False)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("up", "down", "vxlan-up"):
        sys.exit("usage: netlab.py up|down|vxlan-up")
    if os.geteuid() != 0:
        sys.exit("netlab.py: needs root (ip netns)")
    {"up": up, "down": down, "vxlan-up": vxlan_up}[sys.argv[1]]()
