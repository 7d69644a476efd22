"""dgcap: packet-capture analyzer for Deepgram streaming WebSocket sessions."""
from .build_kind import PURE_ENV, env_flag, install_pure_finder

__version__ = "0.1.0"

if env_flag(PURE_ENV):  # run the pure-Python hot modules even where compiled ones are installed
    install_pure_finder()
