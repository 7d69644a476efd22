"""Analysis engines: ways of building the session model from a capture.

* native (analyzer.pipeline.analyze_capture): our own sans-I/O layers, the default;
* tshark (analyzer.engines.tshark.analyze_capture_tshark): Wireshark's dissectors through
  pyshark, a second opinion that feeds the same downstream code (recorder, message rules,
  Deepgram layer, findings, renderers).

`analyzer.engines.compare` lists where two reports of the same capture disagree
(`dgcap verify`).
"""
from __future__ import annotations

ENGINES = ("native", "tshark")
