"""DeepgramAnalyzer: follows one WebSocket session message by message.

The pipeline creates one per session after the HTTP handshake (also a failed one),
feeds every complete data message in capture order, then calls finish(session)
once.  Memory stays bounded: audio is aggregated (counts, sums, histograms), event
lists keep their first few entries, text is capped.
"""
from __future__ import annotations

from collections import Counter, deque
from typing import Callable, ClassVar, Optional

from ..model import (CLIENT, AgentSettings, AudioSummary, DeepgramSummary, FirstPayload, FrameRef,
                     Handshake, Latency, MessageCounts, Occurrences, ProtocolEvents,
                     ResultCounts, ServerAudio,
                     Session, SpeakCounts, SttMetadata, TtsMetadata, TypedFrameRef, UnknownType)
from . import endpoints as ep
from .endpoints import listen_v1, speak_v1
from .audio import AudioMeter, Sniff, bytes_per_second, sniff, SAMPLE_WIDTH
from .closeexplain import explain_server_close
from .latency import LatencySamples
from .messages import (JSON_FIRST_BYTES, NOT_JSON, SERVER_TYPES, control_in_binary, error_fields,
                       metadata_fields, parse_results, parse_text, settings_audio,
                       settings_output)
from .params import check_params, credential_summary, handshake_cause, query_value, to_int
from .transcript import TranscriptBuilder

TEXT, BINARY = 1, 2


def _bump(counter: Counter, key: str, limit: int = 64) -> None:
    # Message types come from the peer; an endless variety must not grow memory.
    keep = key in counter or len(counter) < limit or key in ("audio", "empty")
    counter[key if keep else "(other types)"] += 1


class DeepgramAnalyzer:
    MAX_UNKNOWN_TYPES: ClassVar[int] = 50

    def __init__(self, handshake: Handshake):
        self.handshake = handshake
        self.endpoint = ep.endpoint_for_path(handshake.path)
        # Only a session whose path is unknown (handshake not captured) is inferred
        # from the server's message types; a known non-Deepgram path stays "other".
        self._may_infer = handshake.path is None
        query = handshake.query
        self.encoding = query_value(query, "encoding")
        self.sample_rate = to_int(query_value(query, "sample_rate"))
        self.channels = to_int(query_value(query, "channels")) or 1
        self.encoding_source = "query" if self.encoding else None
        self._wav_format: Optional[tuple] = None  # (encoding, rate, channels) from a WAV header

        self.client_counts: Counter[str] = Counter()
        self.server_counts: Counter[str] = Counter()
        self.client_data = Occurrences()  # every text or binary message from the client
        self.keepalive = Occurrences()
        self.keepalive_binary = Occurrences()
        self.json_in_binary = Occurrences()
        self.text_not_json = Occurrences()
        self.finalize = Occurrences()
        self.audio_after_end = Occurrences()
        self.stream_end: Optional[TypedFrameRef] = None  # CloseStream / Close / empty binary frame
        self.settings: Optional[AgentSettings] = None
        self.speak = SpeakCounts()

        self.sniffed: Optional[Sniff] = None
        self.first_audio: Optional[FirstPayload] = None
        self.meter: Optional[AudioMeter] = None

        self.latency = LatencySamples()
        self.transcript = TranscriptBuilder(separator="\n" if self.endpoint == ep.AGENT else " ")
        self.results = ResultCounts()
        self._confidence_sum, self._confidence_n = 0.0, 0
        self.metadata: Optional[SttMetadata] = None
        self.tts_metadata: Optional[TtsMetadata] = None
        self.server_request_id: Optional[str] = None
        self.last_server_text: Optional[TypedFrameRef] = None
        self.errors = Occurrences()
        self.warnings = Occurrences()
        self.unknown: dict[str, UnknownType] = {}
        self.settings_applied: Optional[FrameRef] = None
        self.server_audio = Occurrences()
        self.closestream_to_metadata: Optional[float] = None
        # Per-endpoint protocol evidence (who spoke first, Configure, Settings, Flush).
        self.protocol = ProtocolEvents()
        self._flush_limit = speak_v1.FLUSH_LIMIT if self.endpoint == ep.SPEAK else None
        self._flush_window: deque = deque()  # Flush times within the last 60 s
        # The Voice Agent takes audio only after SettingsApplied (voice-agent-message-flow).
        self._agent_awaits_settings = self.endpoint == ep.AGENT
        self._turn_text: Optional[str] = None  # Flux: the open turn's latest transcript
        # Flux numbers every server message from 0 (spec): the next sequence_id expected.
        self._next_sequence: Optional[int] = 0 if self.endpoint == ep.LISTEN_V2 else None

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
            ctrl = control_in_binary(data) if data and data[0] in JSON_FIRST_BYTES else None
            if ctrl:
                self._client_control_binary(ctrl, frame, time)
                return
            self.client_counts["audio"] += 1  # what _bump() does for "audio", always kept
            if self.stream_end is not None:
                self.audio_after_end.add(frame, time, size)
            if self._agent_awaits_settings:
                self.protocol.audio_before_settings_applied.add(frame, time, size)
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
        if self._agent_awaits_settings:
            self.protocol.audio_before_settings_applied.add(frame, time, size)
        self._audio(data, size, frame, time)

    def _client_control_binary(self, ctrl: str, frame: int, time: float) -> None:
        _bump(self.client_counts, f"{ctrl} (binary)")
        if ctrl == "KeepAlive":
            self.keepalive_binary.add(frame, time)
        else:
            self.json_in_binary.add(frame, time, type=ctrl)

    def _client_text(self, text: str, frame: int, time: float) -> None:
        parsed = parse_text(text)
        t = parsed.type
        _bump(self.client_counts, t)
        if self.client_data.count == 1:
            self.protocol.first_client_message = TypedFrameRef(t, frame, time)
        if t == NOT_JSON:
            self.text_not_json.add(frame, time, preview=text[:80])
        elif t == "KeepAlive":
            self.keepalive.add(frame, time)
        elif t == "CloseStream" or (t == "Close" and self.endpoint in (ep.SPEAK, ep.SPEAK_V2,
                                                                       ep.OTHER)):
            self._end_stream(t, frame, time)
        elif t == "Configure":
            self.protocol.configure.add(frame, time)
        elif t == "Flush":
            self._flush(frame, time)
        elif t == "Finalize":
            self.finalize.add(frame, time)
        elif t == "Speak":
            text_field = parsed.obj.get("text")
            chars = len(text_field) if isinstance(text_field, str) else 0
            speak = self.speak
            speak.messages += 1
            speak.characters += chars
            speak.max_characters = max(speak.max_characters, chars)
            if speak.first_time is None:
                speak.first_time = time
        if t == "Settings":
            self.protocol.settings.add(frame, time)
        if t == "Settings" and self.settings is None:
            output = settings_output(parsed.obj)  # type: ignore[arg-type]  # a typed message is a dict
            self.protocol.settings_output_encoding = output["encoding"]
            self.protocol.settings_output_container = output["container"]
            self.protocol.settings_speak_given = output["speak_given"]
            audio = settings_audio(parsed.obj)  # type: ignore[arg-type]
            self.settings = AgentSettings(frame, time, audio["encoding"], audio["sample_rate"],
                                          audio_before=self.client_counts["audio"])
            if self.encoding is None and audio["encoding"]:
                self.encoding, self.sample_rate = audio["encoding"], audio["sample_rate"]
                self.encoding_source = "settings"

    def _flush(self, frame: int, time: float) -> None:
        """Count Flush messages and their peak rate per 60 s (TTS: at most 20)."""
        p = self.protocol
        p.flush.add(frame, time)
        window = self._flush_window
        window.append(time)
        while window and time - window[0] >= speak_v1.FLUSH_WINDOW:
            window.popleft()
        p.flush_peak_per_minute = max(p.flush_peak_per_minute, len(window))
        if (self._flush_limit is not None and p.flush_over_limit is None
                and len(window) > self._flush_limit):
            p.flush_over_limit = FrameRef(frame, time)

    def _end_stream(self, kind: str, frame: int, time: float) -> None:
        if self.stream_end is None:
            self.stream_end = TypedFrameRef(kind, frame, time)

    def _audio(self, data: bytes, size: int, frame: int, time: float) -> None:
        header = 0
        if self.meter is None:
            if self.client_data.count == 1:
                self.protocol.first_client_message = TypedFrameRef("audio", frame, time)
            self.sniffed = sniff(data)
            self.first_audio = FirstPayload(frame, time, size, data[:16].hex())
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
        self.last_server_text = TypedFrameRef(t, frame, time)
        if self.protocol.first_server_text is None:
            self.protocol.first_server_text = self.last_server_text
        if self._may_infer and self.endpoint == ep.OTHER:
            inferred = ep.endpoint_for_server_type(t)
            if inferred:
                self.endpoint = inferred
                if inferred == ep.AGENT:
                    self.transcript.separator = "\n"
        if t not in SERVER_TYPES:
            entry = self.unknown.get(t)
            if entry is None:
                entry = self.unknown[t] = UnknownType(0, frame, text[:200])
            entry.count += 1
            return
        if self._next_sequence is not None and obj is not None:
            self._sequence(obj.get("sequence_id"), frame, time)
        handler = SERVER_HANDLERS.get(t)
        if handler is not None:
            handler(self, obj, frame, time)  # type: ignore[arg-type]  # a typed message is a dict

    def _sequence(self, seq: object, frame: int, time: float) -> None:
        if not isinstance(seq, int) or isinstance(seq, bool):
            return
        if seq != self._next_sequence:
            self.protocol.sequence_gaps.add(frame, time, expected=self._next_sequence, got=seq)
        self._next_sequence = seq + 1

    # --- server message handlers (SERVER_HANDLERS maps the types to them) ------

    def _on_results(self, obj: dict, frame: int, time: float) -> None:
        r = parse_results(obj)
        res = self.results
        if res.first_frame is None:
            res.first_frame, res.first_time = frame, time
        res.speech_final += r.speech_final
        res.from_finalize += r.from_finalize
        if r.is_final:
            res.final += 1
            self.transcript.add(r.transcript, r.channel)
            if r.confidence is not None and r.transcript:
                self._confidence_sum += r.confidence
                self._confidence_n += 1
                res.mean_confidence = round(self._confidence_sum / self._confidence_n, 3)
            return
        res.interim += 1
        self._latency_sample(r.end)

    def _latency_sample(self, result_end: Optional[float]) -> None:
        cursor = self.audio_cursor()
        if cursor is not None and result_end is not None:
            self.latency.add(cursor - result_end)

    def audio_cursor(self) -> Optional[float]:
        """Seconds of audio the client has sent so far (None if not computable)."""
        return self.meter.seconds if self.meter is not None else None

    def _on_metadata(self, obj: dict, frame: int, time: float) -> None:
        if self.endpoint == ep.SPEAK:
            if self.tts_metadata is None:
                self.tts_metadata = TtsMetadata(frame, time, _str(obj.get("request_id")),
                                                _str(obj.get("model_name")),
                                                _str(obj.get("model_version")))
            return
        if self.metadata is not None:
            return
        self.metadata = SttMetadata(frame, time, **metadata_fields(obj))
        if self.stream_end is not None and self.stream_end.type == "CloseStream":
            self.closestream_to_metadata = round(time - self.stream_end.time, 3)

    def _on_connected(self, obj: dict, frame: int, time: float) -> None:
        # Connected (/v1/speak, Flux) and Welcome (agent) carry the request id.
        self.server_request_id = self.server_request_id or _str(obj.get("request_id"))

    def _on_turn_info(self, obj: dict, frame: int, time: float) -> None:
        # Flux: Update events play the role of interim results for latency;
        # EndOfTurn carries the turn's final transcript.
        event = obj.get("event")
        if event == "EndOfTurn":
            self._turn_text = None
        elif isinstance(obj.get("transcript"), str):
            self._turn_text = obj["transcript"]
        if event == "EndOfTurn" and isinstance(obj.get("transcript"), str):
            self.transcript.add(obj["transcript"])
        elif event == "Update":
            end = obj.get("audio_window_end")
            self._latency_sample(float(end) if isinstance(end, (int, float)) else None)

    def _on_conversation_text(self, obj: dict, frame: int, time: float) -> None:
        role, content = obj.get("role"), obj.get("content")
        if isinstance(content, str):
            self.transcript.add(f"{role}: {content}" if isinstance(role, str) else content)

    def _on_settings_applied(self, obj: dict, frame: int, time: float) -> None:
        self.settings_applied = self.settings_applied or FrameRef(frame, time)
        self._agent_awaits_settings = False

    def _on_configure_reply(self, obj: dict, frame: int, time: float) -> None:
        self.protocol.configure_replies.add(frame, time, type=obj.get("type"),
                                            code=error_fields(obj)["code"])

    def _on_end_summary(self, obj: dict, frame: int, time: float) -> None:
        self.protocol.end_summary = self.protocol.end_summary or TypedFrameRef(
            obj.get("type"), frame, time)  # type: ignore[arg-type]  # the handler's type

    def _on_error(self, obj: dict, frame: int, time: float) -> None:
        fields = error_fields(obj)
        self.errors.add(frame, time, **fields)
        if self.endpoint == ep.LISTEN and self.protocol.configure.count and (
                fields.get("variant") or fields["code"] in listen_v1.ERRORS):
            # Before 2026-10-19 /v1/listen answered a refused Configure with an Error
            # (dg:/docs/configure): it is the reply to that Configure.
            self.protocol.configure_replies.add(frame, time, type="Error", code=fields["code"])

    def _on_warning(self, obj: dict, frame: int, time: float) -> None:
        self.warnings.add(frame, time, **error_fields(obj))

    # --- output ----------------------------------------------------------------

    def _audio_summary(self) -> AudioSummary:
        s = self.sniffed
        encoding, rate, channels = (self._wav_format
                                    or (self.encoding, self.sample_rate, self.channels))
        # No audio: an empty meter still gives every total (seconds 0.0 when computable).
        meter = self.meter or AudioMeter(bytes_per_second(encoding, rate, channels))
        server = self.server_audio
        return AudioSummary(
            format=s.format if s else None, codec=s.codec if s else None,
            container=s.container if s else None,
            encoding=encoding, encoding_source=self.encoding_source,
            sample_rate=rate, channels=channels, sample_width=SAMPLE_WIDTH.get(encoding or ""),
            wav=s.wav if s else None, first_payload=self.first_audio, pace=meter.summary(),
            server=ServerAudio(server.count, server.bytes, server.first_frame, server.first_time))

    def _latency(self) -> Latency:
        out = self.latency.summary()
        out.closestream_to_metadata = self.closestream_to_metadata
        first_speak, first_audio = self.speak.first_time, self.server_audio.first_time
        out.speak_to_first_audio = (round(first_audio - first_speak, 3)
                                    if first_speak is not None and first_audio is not None
                                    and first_audio >= first_speak else None)
        return out

    def _detected(self) -> bool:
        hs = self.handshake
        return (self.endpoint in ep.DEEPGRAM or hs.dg_request_id is not None
                or ep.is_deepgram_host(hs.request_header("host")))

    def finish(self, session: Session) -> None:
        hs = self.handshake
        meta = self.metadata
        detected = self._detected()
        cause = handshake_cause(hs, self.endpoint) if detected else None
        session.endpoint = self.endpoint
        session.audio = self._audio_summary()
        session.latency = self._latency()
        session.message_counts = MessageCounts(dict(self.client_counts), dict(self.server_counts))
        if self.endpoint == ep.LISTEN_V2 and self._turn_text:
            # Flux ends CloseStream with Updates and no EndOfTurn: the last Update is the
            # turn's final text (dg:/docs/flux/close-stream).
            self.protocol.open_turn_transcript = self._turn_text
            if self.stream_end is not None and self.stream_end.type == "CloseStream":
                self.transcript.add(self._turn_text)
        session.transcript = self.transcript.text()
        session.deepgram = DeepgramSummary(
            detected=detected,
            param_problems=check_params(self.endpoint, hs.query, hs.request_time),
            handshake_cause=cause,
            credentials=credential_summary(hs),
            request_id=((meta.request_id if meta else None) or self.server_request_id
                        or (self.tts_metadata.request_id if self.tts_metadata else None)
                        or hs.dg_request_id),
            sha256=meta.sha256 if meta else None,
            metadata=meta,
            tts_metadata=self.tts_metadata,
            results=self.results,
            stream_end=self.stream_end,
            client_data=self.client_data,
            keepalive=self.keepalive,
            keepalive_binary=self.keepalive_binary,
            json_in_binary=self.json_in_binary,
            text_not_json=self.text_not_json,
            finalize=self.finalize,
            audio_after_end=self.audio_after_end,
            last_server_text=self.last_server_text,
            server_errors=self.errors,
            server_warnings=self.warnings,
            unknown_types=self.unknown,
            settings=self.settings,
            settings_applied=self.settings_applied,
            speak=self.speak,
            transcript_truncated=self.transcript.truncated,
            protocol=self.protocol,
        )
        # The one computation of the close explanation; rules, diagnosis and reports read it.
        session.deepgram.close_explanation = explain_server_close(session)


# Server text message type -> handler of DeepgramAnalyzer (grep finds the callers here).  At
# module level: a table in the class body, built from its functions, is not compiled by mypyc
# (an instance default holding functions, or a ClassVar the compiled class body cannot fill).
SERVER_HANDLERS: dict[str, Callable[[DeepgramAnalyzer, dict, int, float], None]] = {
    "Results": DeepgramAnalyzer._on_results, "Metadata": DeepgramAnalyzer._on_metadata,
    "Connected": DeepgramAnalyzer._on_connected, "Welcome": DeepgramAnalyzer._on_connected,
    "TurnInfo": DeepgramAnalyzer._on_turn_info, "ConversationText": DeepgramAnalyzer._on_conversation_text,
    "SettingsApplied": DeepgramAnalyzer._on_settings_applied, "Error": DeepgramAnalyzer._on_error,
    "Warning": DeepgramAnalyzer._on_warning, "ConfigureSuccess": DeepgramAnalyzer._on_configure_reply,
    "ConfigureFailure": DeepgramAnalyzer._on_configure_reply,
    "SessionMetadata": DeepgramAnalyzer._on_end_summary,
}

def _str(value: object) -> Optional[str]:
    return value if isinstance(value, str) else None
