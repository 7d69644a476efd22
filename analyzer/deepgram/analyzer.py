"""DeepgramAnalyzer: follows one WebSocket session message by message.

The pipeline creates one per session after the HTTP handshake (also a failed one),
feeds every complete data message in capture order, then calls finish(session)
once.  Memory stays bounded: audio is aggregated (counts, sums, histograms), event
lists keep their first few entries, text is capped.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Optional

from ..model import CLIENT, Handshake, Session
from . import endpoints as ep
from .audio import AudioMeter, Sniff, bytes_per_second, sniff, SAMPLE_WIDTH
from .closeexplain import explain_server_close
from .latency import LatencySamples
from .messages import (NOT_JSON, SERVER_TYPES, control_in_binary, error_fields,
                       metadata_fields, parse_results, parse_text, settings_audio)
from .params import check_params, credential_summary, handshake_cause, query_value, to_int
from .transcript import TranscriptBuilder

TEXT, BINARY = 1, 2


class _Events:
    """How often something happened, when first, and the first few frame numbers."""
    KEEP = 20

    def __init__(self) -> None:
        self.count = 0
        self.first_frame: Optional[int] = None
        self.first_time: Optional[float] = None
        self.last_frame: Optional[int] = None
        self.last_time: Optional[float] = None
        self.frames: list[int] = []
        self.items: list[dict] = []  # per-event details, first KEEP only
        self.bytes = 0

    def add(self, frame: int, time: float, size: int = 0, **item: Any) -> None:
        self.count += 1
        self.bytes += size
        if self.first_frame is None:
            self.first_frame, self.first_time = frame, time
        self.last_frame, self.last_time = frame, time
        if len(self.frames) < self.KEEP:
            self.frames.append(frame)
            if item:
                self.items.append({"frame": frame, "time": time, **item})

    def to_json(self) -> dict:
        out = {"count": self.count, "first_frame": self.first_frame, "first_time": self.first_time,
               "last_frame": self.last_frame, "last_time": self.last_time, "frames": self.frames}
        if self.bytes:
            out["bytes"] = self.bytes
        if self.items:
            out["items"] = self.items
        return out


def _bump(counter: Counter, key: str, limit: int = 64) -> None:
    # Message types come from the peer; an endless variety must not grow memory.
    keep = key in counter or len(counter) < limit or key in ("audio", "empty")
    counter[key if keep else "(other types)"] += 1


class DeepgramAnalyzer:
    MAX_UNKNOWN_TYPES = 50

    def __init__(self, handshake: Handshake):
        self.handshake = handshake
        self.endpoint = ep.endpoint_for_path(handshake.path)
        # Only a session whose path is unknown (handshake not captured) is inferred
        # from the server's message types; a known non-Deepgram path stays "other".
        self._may_infer = handshake.path is None
        query = handshake.query or {}
        self.encoding = query_value(query, "encoding")
        self.sample_rate = to_int(query_value(query, "sample_rate"))
        self.channels = to_int(query_value(query, "channels")) or 1
        self.encoding_source = "query" if self.encoding else None
        self._wav_format: Optional[tuple] = None  # (encoding, rate, channels) from a WAV header

        self.client_counts: Counter[str] = Counter()
        self.server_counts: Counter[str] = Counter()
        self.client_data = _Events()  # every text or binary message from the client
        self.keepalive = _Events()
        self.keepalive_binary = _Events()
        self.json_in_binary = _Events()
        self.text_not_json = _Events()
        self.finalize = _Events()
        self.audio_after_end = _Events()
        self.stream_end: Optional[dict] = None  # CloseStream / Close / empty binary frame
        self.settings: Optional[dict] = None
        self.speak = {"messages": 0, "characters": 0, "max_characters": 0, "first_time": None}

        self.sniffed: Optional[Sniff] = None
        self.first_audio: Optional[dict] = None
        self.meter: Optional[AudioMeter] = None

        self.latency = LatencySamples()
        self.transcript = TranscriptBuilder(separator="\n" if self.endpoint == ep.AGENT else " ")
        self.results = {"final": 0, "interim": 0, "speech_final": 0, "from_finalize": 0,
                        "first_frame": None, "first_time": None, "mean_confidence": None}
        self._confidence_sum, self._confidence_n = 0.0, 0
        self.metadata: Optional[dict] = None
        self.tts_metadata: Optional[dict] = None
        self.server_request_id: Optional[str] = None
        self.last_server_text: Optional[dict] = None
        self.errors = _Events()
        self.warnings = _Events()
        self.unknown: dict[str, dict] = {}
        self.settings_applied: Optional[dict] = None
        self.server_audio = _Events()
        self.closestream_to_metadata: Optional[float] = None

    # --- input ----------------------------------------------------------------

    def message(self, direction: int, opcode: int, data: bytes, size: int, frame: int,
                time: float) -> None:
        if direction == CLIENT:
            self._client(opcode, data, size, frame, time)
        else:
            self._server(opcode, data, size, frame, time)

    def _client(self, opcode: int, data: bytes, size: int, frame: int, time: float) -> None:
        if opcode == BINARY and size:
            # The common case (an audio chunk): the general code below with the calls inlined.
            events = self.client_data  # events.add(frame, time)
            events.count += 1
            if events.first_frame is None:
                events.first_frame, events.first_time = frame, time
            events.last_frame, events.last_time = frame, time
            if len(events.frames) < events.KEEP:
                events.frames.append(frame)
            ctrl = control_in_binary(data)
            if ctrl:
                self._client_control_binary(ctrl, frame, time)
                return
            self.client_counts["audio"] += 1  # what _bump() does for "audio", always kept
            if self.stream_end is not None:
                self.audio_after_end.add(frame, time, size)
            meter = self.meter
            if meter is not None:
                meter.add(time, size, frame)  # what _audio() does after the first chunk
            else:
                self._audio(data, size, frame, time)
            return
        if opcode not in (TEXT, BINARY):
            return
        self.client_data.add(frame, time)
        if opcode == TEXT:
            self._client_text(data.decode("utf-8", "replace"), frame, time)
            return
        if size == 0:
            # Deepgram treats b"" as end of stream (the old close signal).
            _bump(self.client_counts, "empty")
            self._end_stream("empty binary frame", frame, time)
            return
        ctrl = control_in_binary(data)
        if ctrl:
            self._client_control_binary(ctrl, frame, time)
            return
        _bump(self.client_counts, "audio")
        if self.stream_end is not None:
            self.audio_after_end.add(frame, time, size)
        self._audio(data, size, frame, time)

    def _client_control_binary(self, ctrl: str, frame: int, time: float) -> None:
        _bump(self.client_counts, f"{ctrl} (binary)")
        if ctrl in ("KeepAlive", "AgentKeepAlive"):
            self.keepalive_binary.add(frame, time)
        else:
            self.json_in_binary.add(frame, time, type=ctrl)

    def _client_text(self, text: str, frame: int, time: float) -> None:
        parsed = parse_text(text)
        t = parsed.type
        _bump(self.client_counts, t)
        if t == NOT_JSON:
            self.text_not_json.add(frame, time, preview=text[:80])
        elif t in ("KeepAlive", "AgentKeepAlive"):
            self.keepalive.add(frame, time)
        elif t == "CloseStream" or (t == "Close" and self.endpoint in (ep.SPEAK, ep.OTHER)):
            self._end_stream(t, frame, time)
        elif t == "Finalize":
            self.finalize.add(frame, time)
        elif t == "Speak":
            text_field = parsed.obj.get("text")
            chars = len(text_field) if isinstance(text_field, str) else 0
            self.speak["messages"] += 1
            self.speak["characters"] += chars
            self.speak["max_characters"] = max(self.speak["max_characters"], chars)
            if self.speak["first_time"] is None:
                self.speak["first_time"] = time
        elif t == "Settings" and self.settings is None:
            audio = settings_audio(parsed.obj)
            self.settings = {"frame": frame, "time": time, **audio,
                             "audio_before": self.client_counts["audio"]}
            if self.encoding is None and audio["encoding"]:
                self.encoding, self.sample_rate = audio["encoding"], audio["sample_rate"]
                self.encoding_source = "settings"

    def _end_stream(self, kind: str, frame: int, time: float) -> None:
        if self.stream_end is None:
            self.stream_end = {"type": kind, "frame": frame, "time": time}

    def _audio(self, data: bytes, size: int, frame: int, time: float) -> None:
        header = 0
        if self.meter is None:
            self.sniffed = sniff(data)
            self.first_audio = {"frame": frame, "time": time, "size": size,
                                "head": data[:16].hex()}
            wav = self.sniffed.wav
            if self.encoding is None and wav is not None and wav.encoding:
                # A WAV header tells the format the query left out.
                bps = bytes_per_second(wav.encoding, wav.sample_rate, wav.channels)
                header = wav.data_offset or 0
                self.encoding_source = "wav-header"
                self._wav_format = (wav.encoding, wav.sample_rate, wav.channels)
            else:
                bps = bytes_per_second(self.encoding, self.sample_rate, self.channels)
            self.meter = AudioMeter(bps)
        self.meter.add(time, max(0, size - header), frame)

    def _server(self, opcode: int, data: bytes, size: int, frame: int, time: float) -> None:
        if opcode == BINARY:
            _bump(self.server_counts, "audio")
            self.server_audio.add(frame, time, size)
            return
        if opcode != TEXT:
            return
        text = data.decode("utf-8", "replace")
        parsed = parse_text(text)
        t, obj = parsed.type, parsed.obj
        if (t not in SERVER_TYPES and t not in self.unknown
                and len(self.unknown) >= self.MAX_UNKNOWN_TYPES):
            t = "(other unknown types)"  # a server inventing types must not grow memory
        _bump(self.server_counts, t)
        self.last_server_text = {"frame": frame, "time": time, "type": t}
        if self._may_infer and self.endpoint == ep.OTHER:
            inferred = ep.endpoint_for_server_type(t)
            if inferred:
                self.endpoint = inferred
                if inferred == ep.AGENT:
                    self.transcript.separator = "\n"
        if t not in SERVER_TYPES:
            entry = self.unknown.setdefault(t, {"count": 0, "first_frame": frame,
                                                "sample": text[:200]})
            entry["count"] += 1
            return
        handler = getattr(self, f"_on_{t}", None)
        if handler:
            handler(obj, frame, time)

    # --- server message handlers (named after the message type) ---------------

    def _on_Results(self, obj: dict, frame: int, time: float) -> None:
        r = parse_results(obj)
        res = self.results
        if res["first_frame"] is None:
            res["first_frame"], res["first_time"] = frame, time
        res["speech_final"] += r.speech_final
        res["from_finalize"] += r.from_finalize
        if r.is_final:
            res["final"] += 1
            self.transcript.add(r.transcript, r.channel)
            if r.confidence is not None and r.transcript:
                self._confidence_sum += r.confidence
                self._confidence_n += 1
                res["mean_confidence"] = round(self._confidence_sum / self._confidence_n, 3)
            return
        res["interim"] += 1
        self._latency_sample(r.end)

    def _latency_sample(self, result_end: Optional[float]) -> None:
        cursor = self.audio_cursor()
        if cursor is not None and result_end is not None:
            self.latency.add(cursor - result_end)

    def audio_cursor(self) -> Optional[float]:
        """Seconds of audio the client has sent so far (None if not computable)."""
        return self.meter.seconds if self.meter is not None else None

    def _on_Metadata(self, obj: dict, frame: int, time: float) -> None:
        if self.endpoint == ep.SPEAK:
            if self.tts_metadata is None:
                self.tts_metadata = {"frame": frame, "time": time,
                                     "request_id": obj.get("request_id"),
                                     "model_name": obj.get("model_name"),
                                     "model_version": obj.get("model_version")}
            return
        if self.metadata is not None:
            return
        self.metadata = {"frame": frame, "time": time, **metadata_fields(obj)}
        if self.stream_end is not None and self.stream_end["type"] == "CloseStream":
            self.closestream_to_metadata = round(time - self.stream_end["time"], 3)

    def _on_Connected(self, obj: dict, frame: int, time: float) -> None:
        self.server_request_id = self.server_request_id or obj.get("request_id")

    _on_Welcome = _on_Connected

    def _on_TurnInfo(self, obj: dict, frame: int, time: float) -> None:
        # Flux: Update events play the role of interim results for latency;
        # EndOfTurn carries the turn's final transcript.
        event = obj.get("event")
        if event == "EndOfTurn" and isinstance(obj.get("transcript"), str):
            self.transcript.add(obj["transcript"])
        elif event == "Update":
            end = obj.get("audio_window_end")
            self._latency_sample(float(end) if isinstance(end, (int, float)) else None)

    def _on_ConversationText(self, obj: dict, frame: int, time: float) -> None:
        role, content = obj.get("role"), obj.get("content")
        if isinstance(content, str):
            self.transcript.add(f"{role}: {content}" if isinstance(role, str) else content)

    def _on_SettingsApplied(self, obj: dict, frame: int, time: float) -> None:
        self.settings_applied = self.settings_applied or {"frame": frame, "time": time}

    def _on_Error(self, obj: dict, frame: int, time: float) -> None:
        self.errors.add(frame, time, **error_fields(obj))

    def _on_Warning(self, obj: dict, frame: int, time: float) -> None:
        self.warnings.add(frame, time, **error_fields(obj))

    # --- output ----------------------------------------------------------------

    def _audio_json(self) -> dict:
        s = self.sniffed
        encoding, rate, channels = (self._wav_format
                                    or (self.encoding, self.sample_rate, self.channels))
        out: dict[str, Any] = {
            "format": s.format if s else None, "codec": s.codec if s else None,
            "container": s.container if s else None,
            "encoding": encoding, "encoding_source": self.encoding_source,
            "sample_rate": rate, "channels": channels,
            "sample_width": SAMPLE_WIDTH.get(encoding or ""),
            "wav": s.wav.to_json() if s and s.wav else None,
            "first_payload": self.first_audio,
        }
        # No audio: an empty meter still gives every key (seconds 0.0 when computable).
        meter = self.meter or AudioMeter(bytes_per_second(encoding, rate, channels))
        out.update(meter.summary())
        out["server"] = {"frames": self.server_audio.count, "bytes": self.server_audio.bytes,
                         "first_frame": self.server_audio.first_frame,
                         "first_time": self.server_audio.first_time}
        return out

    def _latency_json(self) -> dict:
        out = self.latency.summary()
        out["closestream_to_metadata"] = self.closestream_to_metadata
        first_speak, first_audio = self.speak["first_time"], self.server_audio.first_time
        out["speak_to_first_audio"] = (round(first_audio - first_speak, 3)
                                       if first_speak is not None and first_audio is not None
                                       and first_audio >= first_speak else None)
        return out

    def _detected(self) -> bool:
        hs = self.handshake
        return (self.endpoint in ep.DEEPGRAM or hs.dg_request_id is not None
                or ep.is_deepgram_host(hs.request_header("host")))

    def finish(self, session: Session) -> None:
        hs = self.handshake
        meta = self.metadata or {}
        cause = handshake_cause(hs, self.endpoint) if self._detected() else None
        session.extra["endpoint"] = self.endpoint
        session.extra["audio"] = self._audio_json()
        session.extra["latency"] = self._latency_json()
        session.extra["messages"] = {"client": dict(self.client_counts),
                                     "server": dict(self.server_counts)}
        session.extra["transcript"] = self.transcript.text()
        session.extra["deepgram"] = {
            "detected": self._detected(),
            "close_explanation": None,
            "param_problems": [p.to_json() for p in check_params(self.endpoint, hs.query or {})],
            "handshake_cause": cause.to_json() if cause else None,
            "credentials": credential_summary(hs),
            "request_id": (meta.get("request_id") or self.server_request_id
                           or (self.tts_metadata or {}).get("request_id") or hs.dg_request_id),
            "sha256": meta.get("sha256"),
            "metadata": self.metadata,
            "tts_metadata": self.tts_metadata,
            "results": self.results,
            "stream_end": self.stream_end,
            "client_data": self.client_data.to_json(),
            "keepalive": self.keepalive.to_json(),
            "keepalive_binary": self.keepalive_binary.to_json(),
            "json_in_binary": self.json_in_binary.to_json(),
            "text_not_json": self.text_not_json.to_json(),
            "finalize": self.finalize.to_json(),
            "audio_after_end": self.audio_after_end.to_json(),
            "last_server_text": self.last_server_text,
            "server_errors": self.errors.to_json(),
            "server_warnings": self.warnings.to_json(),
            "unknown_types": self.unknown,
            "settings": self.settings,
            "settings_applied": self.settings_applied,
            "speak": self.speak,
            "transcript_truncated": self.transcript.truncated,
        }
        explanation = explain_server_close(session)
        session.extra["deepgram"]["close_explanation"] = explanation.to_json() if explanation else None
