"""The Deepgram layer: endpoints, parameters, messages, close codes, audio, latency.

The pipeline uses DeepgramAnalyzer per WebSocket session and diagnose() per
finished session; the finding rules live in analyzer/findings/deepgram_rules.py.
"""
from .analyzer import DeepgramAnalyzer
from .diagnosis import diagnose

__all__ = ["DeepgramAnalyzer", "diagnose"]
