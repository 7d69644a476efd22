"""dgcap: packet-capture analyzer for Deepgram streaming WebSocket sessions."""
__version__ = "0.1.0"
