"""TCP layer: per-direction stream reassembly and connection tracking (sans-I/O)."""
from .reassembly import NO_CHUNKS, StreamReassembler
from .tracker import ACK, FIN, PSH, RST, SYN, Connection, TcpTracker

__all__ = ["StreamReassembler", "TcpTracker", "Connection", "NO_CHUNKS",
           "FIN", "SYN", "RST", "PSH", "ACK"]
