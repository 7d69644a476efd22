#!/usr/bin/env python3
"""A local server that behaves like Deepgram's streaming endpoints (for recording fixtures).

Built on the ``websockets`` asyncio server.  Endpoints:

* ``/v1/listen`` (Nova live STT).  Handshake: ``Authorization: Token <key>`` is checked
  (missing/wrong -> 401 ``INVALID_AUTH``); an unknown ``language`` or a ``flux-*`` model
  -> 400 "No such model/language/tier combination found."; every response carries
  ``dg-request-id``; failures carry ``dg-error`` and a JSON body.
  After the 101: ``Results`` (interim/final) for every second of linear16 audio,
  ``KeepAlive`` (ignored), ``Finalize`` (final ``Results`` with ``from_finalize: true``),
  ``CloseStream`` or an empty binary frame (last final ``Results``, ``Metadata``, close 1000),
  NET-0001 close 1011 after 10 s without a client frame (and 10 s after the open when no
  audio ever arrived, KeepAlive or not), DATA-0000 close 1008 when the first binary
  payload is text.
  ``Configure`` -> ``ConfigureSuccess {request_id, keyterms}`` (the reply every Configure
  gets since 2026-10-19); the ``callback`` parameter is accepted (and not called).
* ``/v2/listen`` (Flux): ``model`` must be flux-general-en / flux-general-multi (else
  400); ``Connected`` at once, ``TurnInfo`` StartOfTurn/Update as audio arrives, every
  message with a 0-based ``sequence_id``; ``ForceEndTurn`` -> ``EndOfTurn`` (trigger
  manual); ``CloseStream`` -> a last ``Update`` (no EndOfTurn, no Metadata) then a close
  frame WITHOUT a status code (dg:/docs/flux/close-stream); a JSON ``KeepAlive`` (Flux has
  none) kills the socket with a status-less close, as users saw (py#649).
* ``/v1/speak`` (TTS): encoding linear16/mulaw/alaw only (mp3 etc. -> 400
  INVALID_QUERY_PARAMETER, ``{category, message, details, request_id}`` body);
  ``Speak`` / ``Flush`` / ``Clear`` / ``Close``; binary audio, ``Metadata``,
  ``Flushed {sequence_id}``, ``Cleared``; more than 20 ``Flush`` in 60 s -> ``Warning``
  ``{warn_code: EXCESSIVE_FLUSH, warn_msg}`` as sent on the wire (py#617); an unknown
  command -> close 1008 DATA-0000; close 1000 on ``Close``.
* ``/v2/speak`` (Flux TTS): ``Connected`` at once; ``Speak`` {text}, ``Flush`` ->
  ``SpeechStarted {speech_id}``, audio, ``SpeechMetadata``, ``Flushed {speech_id}``;
  ``Close`` -> ``SessionMetadata`` then close 1000 (the code itself: unconfirmed).
* ``/v1/agent/converse`` (Voice Agent): ``Welcome`` at once; ``Settings`` ->
  ``SettingsApplied``; audio -> UserStartedSpeaking, ConversationText (user), AgentThinking,
  ConversationText (assistant), AgentStartedSpeaking, audio, AgentAudioDone,
  LatencyReport; KeepAlive ignored; audio before Settings -> ``Error``
  NON_SETTINGS_MESSAGE_BEFORE_SETTINGS, then close (the close code after an Error is
  unconfirmed; this server sends 1000).

``RawFragmentServer`` is a hand-written WebSocket server (exact wire control) that sends a
text message in three fragments with a ping between the first two.

Run standalone:  python captures/fake_deepgram.py --port 18080 [--host ::1] [--tls]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as _dt
import hashlib
import json
import math
import os
import ssl
import struct
import sys
import tempfile
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

API_KEY = "dgtest_0123456789abcdef0123456789abcdef"

NET0001_REASON = ("Deepgram did not receive audio data or a text message within the timeout "
                  "window. See https://dpgr.am/net0001")
DATA0000_REASON = "DATA-0000: The payload cannot be decoded as audio."
INVALID_AUTH_MSG = "Invalid credentials."
BAD_MODEL_MSG = "No such model/language/tier combination found."
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

MODEL_INFO = {"name": "general-nova-3", "version": "2024-12-20.0", "arch": "nova-3"}
MODEL_UUID = "40bd3654-e622-47c4-a111-63a61b23bbb1"
KNOWN_LANGUAGES = {"en", "en-US", "en-GB", "en-AU", "en-IN", "en-NZ", "multi", "de", "es",
                   "fr", "it", "ja", "nl", "pt", "ru", "hi"}
WORDS = ["hello", "this", "is", "a", "test", "of", "the", "local", "deepgram", "server",
         "streaming", "tone"]
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def jdump(obj: Any) -> str:
    """Compact JSON, like Deepgram sends."""
    return json.dumps(obj, separators=(",", ":"))


def looks_like_text(payload: bytes) -> bool:
    """True when a binary payload is clearly not audio (JSON or printable text)."""
    if not payload:
        return False
    if payload[:1] in (b"{", b"["):
        return True
    sample = payload[:256]
    return all(32 <= b < 127 or b in (9, 10, 13) for b in sample)


class RequestIds:
    """Deterministic request ids: <prefix>-<counter>, in connection order."""

    def __init__(self, base: int = 0):
        self.base = base
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return f"d9c0a1e2-0000-4000-8000-{self.base:06d}{self.n:06d}"


class FakeDeepgram:
    def __init__(self, *, api_key: str = API_KEY, request_ids: Optional[RequestIds] = None,
                 timeout: float = 10.0, log: Optional[Callable[[dict], None]] = None):
        self.api_key = api_key
        self.ids = request_ids or RequestIds()
        self.timeout = timeout
        self.log = log or (lambda event: None)
        self.connections: list[dict] = []  # one record per handshake (facts for the recorder)

    # ------------------------------------------------------------------ handshake
    def _reject(self, conn: ServerConnection, status: int, rid: str, err_code: str,
                msg: str) -> Response:
        """The {err_code, err_msg, request_id} error body (oapi ErrorResponse)."""
        return self._reject_with(conn, status, rid, msg,
                                 {"err_code": err_code, "err_msg": msg, "request_id": rid})

    def _reject_category(self, conn: ServerConnection, status: int, rid: str, category: str,
                         msg: str, details: str) -> Response:
        """The other JSON error body shape (oapi ErrorResponse): category/message/details."""
        return self._reject_with(conn, status, rid, msg, {
            "category": category, "message": msg, "details": details, "request_id": rid})

    def _reject_with(self, conn: ServerConnection, status: int, rid: str, msg: str,
                     body: dict) -> Response:
        resp = conn.respond(status, jdump(body))
        del resp.headers["Content-Type"]
        resp.headers["Content-Type"] = "application/json"
        resp.headers["dg-error"] = msg
        resp.headers["dg-request-id"] = rid
        return resp

    def process_request(self, conn: ServerConnection, request: Request) -> Optional[Response]:
        rid = self.ids.next()
        url = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        rec = {"request_id": rid, "path": url.path, "query": query, "status": 101,
               "close_sent": None, "audio_bytes": 0, "sha256": None}
        conn.dg = rec  # type: ignore[attr-defined]
        self.connections.append(rec)
        auth = request.headers.get("Authorization")
        parts = auth.split(" ", 1) if auth else []
        if not (len(parts) == 2 and parts[0].lower() == "token" and parts[1] == self.api_key):
            rec["status"] = 401
            return self._reject(conn, 401, rid, "INVALID_AUTH", INVALID_AUTH_MSG)
        model = query.get("model", "")
        if url.path == "/v1/speak" and query.get("encoding", "linear16") not in (
                "linear16", "mulaw", "alaw"):
            rec["status"] = 400
            return self._reject_category(
                conn, 400, rid, "INVALID_QUERY_PARAMETER",
                "Failed to deserialize query parameters: unknown variant "
                f"`{query['encoding']}`, expected one of `linear16`, `mulaw`, `alaw`",
                "encoding is not supported for streaming text-to-speech")
        if url.path == "/v2/speak" and not model.startswith("flux-"):
            rec["status"] = 400
            return self._reject(conn, 400, rid, "Bad Request",
                                "No such model/version combination found.")
        if url.path == "/v1/listen":
            lang = query.get("language")
            if (lang is not None and lang not in KNOWN_LANGUAGES) or model.startswith("flux"):
                rec["status"] = 400
                return self._reject(conn, 400, rid, "Bad Request", BAD_MODEL_MSG)
        elif url.path == "/v2/listen":
            if model not in ("flux-general-en", "flux-general-multi"):
                rec["status"] = 400
                return self._reject(conn, 400, rid, "Bad Request", BAD_MODEL_MSG)
        elif url.path not in ("/v1/speak", "/v2/speak", "/v1/agent/converse"):
            rec["status"] = 404
            return self._reject(conn, 404, rid, "NOT_FOUND", "Not found.")
        return None

    def process_response(self, conn: ServerConnection, request: Request,
                         response: Response) -> None:
        if response.status_code == 101:
            response.headers["dg-request-id"] = conn.dg["request_id"]  # type: ignore[attr-defined]

    async def handler(self, ws: ServerConnection) -> None:
        rec = ws.dg  # type: ignore[attr-defined]
        try:
            if rec["path"] == "/v1/listen":
                await self.listen_v1(ws, rec)
            elif rec["path"] == "/v2/listen":
                await self.listen_v2(ws, rec)
            elif rec["path"] == "/v1/speak":
                await self.speak(ws, rec)
            elif rec["path"] == "/v2/speak":
                await self.speak_v2(ws, rec)
            elif rec["path"] == "/v1/agent/converse":
                await self.agent(ws, rec)
        except ConnectionClosed:
            pass

    async def _close(self, ws: ServerConnection, rec: dict, code: Optional[int],
                     reason: str) -> None:
        """Close with `code`; None sends a close frame without a status code."""
        rec["close_sent"] = [code, reason]
        self.log({"request_id": rec["request_id"], "close": code, "reason": reason})
        await ws.close(code, reason)

    # ------------------------------------------------------------------ /v1/listen
    async def listen_v1(self, ws: ServerConnection, rec: dict) -> None:
        loop = asyncio.get_running_loop()
        q = rec["query"]
        rid = rec["request_id"]
        rate = int(q.get("sample_rate", "16000") or 16000)
        channels = int(q.get("channels", "1") or 1)
        bps = rate * 2 * channels  # linear16
        sha = hashlib.sha256()
        total = 0
        rec["sha256"] = EMPTY_SHA256
        seg_start = 0.0
        boundary = 1
        seq_words = 0
        opened = loop.time()
        last_frame = opened
        audio_seen = False
        first_binary = True
        kt = rec["query"].get("keyterm")
        current_keyterms: list = [kt] if kt else []

        def results(start: float, end: float, is_final: bool, speech_final: bool,
                     from_finalize: bool = False) -> str:
            nonlocal seq_words
            dur = round(max(0.0, end - start), 3)
            nwords = int(round(dur * 2))
            words = []
            for i in range(nwords):
                w = WORDS[(seq_words + i) % len(WORDS)]
                ws_ = round(start + i * 0.5, 3)
                words.append({"word": w, "start": ws_, "end": round(ws_ + 0.4, 3),
                              "confidence": 0.99, "punctuated_word": w})
            if is_final:
                seq_words += nwords
            return jdump({
                "type": "Results", "channel_index": [0, channels], "duration": dur,
                "start": round(start, 3), "is_final": is_final, "speech_final": speech_final,
                "channel": {"alternatives": [{
                    "transcript": " ".join(w["word"] for w in words),
                    "confidence": 0.99 if words else 0.0, "words": words}]},
                "metadata": {"request_id": rid, "model_info": MODEL_INFO,
                             "model_uuid": MODEL_UUID},
                "from_finalize": from_finalize})

        async def finish() -> None:
            nonlocal seg_start
            cursor = total / bps
            if cursor - seg_start > 1e-9 or total == 0:
                await ws.send(results(seg_start, cursor, True, True))
                seg_start = cursor
            rec["audio_bytes"] = total
            rec["sha256"] = sha.hexdigest()
            now = _dt.datetime.now(_dt.timezone.utc)
            await ws.send(jdump({
                "type": "Metadata", "transaction_key": "deprecated", "request_id": rid,
                "sha256": sha.hexdigest(),
                "created": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                "duration": round(total / bps, 6), "channels": channels,
                "models": [MODEL_UUID],
                "model_info": {MODEL_UUID: MODEL_INFO}}))
            await self._close(ws, rec, 1000, "")

        while True:
            deadline = (last_frame if audio_seen else opened) + self.timeout
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                msg = await asyncio.wait_for(ws.recv(), remaining)
            except (TimeoutError, asyncio.TimeoutError):
                rec["audio_bytes"] = total
                await self._close(ws, rec, 1011, NET0001_REASON)
                return
            except ConnectionClosed:
                rec["audio_bytes"] = total
                return
            last_frame = loop.time()
            if isinstance(msg, bytes):
                if len(msg) == 0:  # legacy end-of-stream signal
                    await finish()
                    return
                if first_binary and looks_like_text(msg):
                    await self._close(ws, rec, 1008, DATA0000_REASON)
                    return
                first_binary = False
                audio_seen = True
                sha.update(msg)
                total += len(msg)
                rec["audio_bytes"], rec["sha256"] = total, sha.hexdigest()
                while total >= boundary * bps:
                    cursor = float(boundary)
                    if boundary % 2:
                        await ws.send(results(seg_start, cursor, False, False))
                    else:
                        await ws.send(results(seg_start, cursor, True, True))
                        seg_start = cursor
                    boundary += 1
                continue
            try:
                ctl = json.loads(msg)
                kind = ctl.get("type") if isinstance(ctl, dict) else None
            except ValueError:
                kind = None
            if kind == "Finalize":
                cursor = total / bps
                await ws.send(results(seg_start, cursor, True, False, from_finalize=True))
                seg_start = cursor
            elif kind == "CloseStream":
                await finish()
                return
            elif kind == "Configure":
                keyterms = ctl.get("keyterms")
                if isinstance(keyterms, list):
                    current_keyterms[:] = keyterms  # each array replaces the whole list
                await ws.send(jdump({"type": "ConfigureSuccess", "request_id": rid,
                                     "keyterms": list(current_keyterms)}))
            # KeepAlive and unknown text messages: nothing to send

    # ------------------------------------------------------------------ /v2/listen (Flux)
    async def listen_v2(self, ws: ServerConnection, rec: dict) -> None:
        rid = rec["request_id"]
        q = rec["query"]
        bps = int(q.get("sample_rate", "16000") or 16000) * 2
        seq = 0
        total = 0
        step = 0.24
        next_update = step
        turn_index = 0
        turn_start = 0.0
        started = False

        async def send(obj: dict) -> None:
            nonlocal seq
            obj = {"type": obj.pop("type"), "request_id": rid, "sequence_id": seq, **obj}
            seq += 1
            await ws.send(jdump(obj))

        def turn(event: str, end: float, conf: float, trigger: Optional[str] = None) -> dict:
            n = int((end - turn_start) / 0.5)
            words = [{"word": WORDS[i % len(WORDS)], "confidence": 0.98} for i in range(n)]
            out = {"type": "TurnInfo", "event": event, "turn_index": turn_index,
                   "audio_window_start": round(turn_start, 3), "audio_window_end": round(end, 3),
                   "transcript": " ".join(w["word"] for w in words), "words": words,
                   "end_of_turn_confidence": conf}
            if trigger:
                out["trigger"] = trigger  # only EndOfTurn carries it
            return out

        await send({"type": "Connected"})  # at once (spec; py#616)
        async for msg in ws:
            if isinstance(msg, bytes):
                total += len(msg)
                while total / bps + 1e-9 >= next_update:
                    await send(turn("Update" if started else "StartOfTurn", next_update, 0.02))
                    started = True
                    next_update = round(next_update + step, 6)
                continue
            try:
                kind = json.loads(msg).get("type")
            except (ValueError, AttributeError):
                kind = None
            rec["audio_bytes"] = total
            if kind == "ForceEndTurn" and started:
                await send(turn("EndOfTurn", total / bps, 0.91, trigger="manual"))
                turn_index += 1
                turn_start = total / bps
                started = False
            elif kind == "CloseStream":
                # Decode what is left: Updates, no EndOfTurn, no Metadata, then a close
                # frame without a status code (dg:/docs/flux/close-stream).
                if started:
                    await send(turn("Update", total / bps, 0.3))
                await self._close(ws, rec, None, "")
                return
            elif kind == "KeepAlive":
                # Flux has no KeepAlive message; a JSON one killed the socket (py#649).
                await self._close(ws, rec, None, "")
                return

    # ------------------------------------------------------------------ /v1/speak (TTS)
    async def speak(self, ws: ServerConnection, rec: dict) -> None:
        rid = rec["request_id"]
        q = rec["query"]
        rate = int(q.get("sample_rate", "24000") or 24000)
        pending: list[str] = []
        seq = 0
        metadata_sent = False
        flushes: list[float] = []  # times of the Flush messages in the last 60 s
        loop = asyncio.get_running_loop()
        async for msg in ws:
            if isinstance(msg, bytes):
                await self._close(ws, rec, 1003, "MESSAGE-0000")
                return
            try:
                cmd = json.loads(msg)
            except ValueError:
                await self._close(ws, rec, 1008, "DATA-0000")
                return
            kind = cmd.get("type")
            if kind == "Speak":
                pending.append(str(cmd.get("text", "")))
                if not metadata_sent:
                    metadata_sent = True
                    await ws.send(jdump({
                        "type": "Metadata", "request_id": rid,
                        "model_name": q.get("model", "aura-2-thalia-en"),
                        "model_version": "2025-04-07.0",
                        "model_uuid": "ecb76e9d-f2db-4127-8060-79b05590d22f"}))
            elif kind == "Flush":
                now = loop.time()
                flushes[:] = [t for t in flushes if now - t < 60.0] + [now]
                if len(flushes) > 20:
                    # At most 20 Flush per 60 s (docs-repo tts-ws-flush.mdx); the warning
                    # as sent on the wire (py#617), not the spec's {code, description}.
                    await ws.send(jdump({"type": "Warning", "warn_code": "EXCESSIVE_FLUSH",
                                         "warn_msg": "Rate limit exceeded for flushes. "
                                                     "Please try again later."}))
                    continue
                audio = tts_audio("".join(pending), rate)
                pending.clear()
                chunk = rate * 2 // 10  # 100 ms
                for i in range(0, len(audio), chunk):
                    await ws.send(audio[i:i + chunk])
                rec["audio_bytes"] = rec.get("audio_bytes", 0) + len(audio)
                await ws.send(jdump({"type": "Flushed", "sequence_id": seq}))
                seq += 1
            elif kind == "Clear":
                pending.clear()
                await ws.send(jdump({"type": "Cleared", "sequence_id": seq}))
            elif kind == "Close":
                await self._close(ws, rec, 1000, "")
                return
            else:  # not a valid command (TTS troubleshooting guide)
                await self._close(ws, rec, 1008, "DATA-0000")
                return

    # ------------------------------------------------------------------ /v2/speak (Flux TTS)
    async def speak_v2(self, ws: ServerConnection, rec: dict) -> None:
        rid = rec["request_id"]
        q = rec["query"]
        rate = int(q.get("sample_rate", "24000") or 24000)
        model = q.get("model", "")
        pending: list[str] = []
        speeches = 0
        totals = {"audio_ms": 0, "chars": 0}
        await ws.send(jdump({"type": "Connected", "request_id": rid, "model_name": model,
                             "model_version": "2026-08-12.0",
                             "model_uuids": ["5b2f0c1e-7d3a-4e8b-9f10-2a3b4c5d6e7f"]}))

        async def synthesize() -> None:
            nonlocal speeches
            text = "".join(pending)
            pending.clear()
            speech_id = f"dg_sp_{rec['request_id'][-6:]}{speeches:06x}"
            speeches += 1
            await ws.send(jdump({"type": "SpeechStarted", "speech_id": speech_id}))
            audio = tts_audio(text, rate)
            chunk = rate * 2 // 10
            for i in range(0, len(audio), chunk):
                await ws.send(audio[i:i + chunk])
            rec["audio_bytes"] = rec.get("audio_bytes", 0) + len(audio)
            ms = round(len(audio) / (rate * 2) * 1000)
            totals["audio_ms"] += ms
            totals["chars"] += len(text)
            await ws.send(jdump({"type": "SpeechMetadata", "speech_id": speech_id,
                                 "audio_duration_ms": ms, "input_character_count": len(text),
                                 "billable_character_count": len(text),
                                 "controls_applied": {}}))
            await ws.send(jdump({"type": "Flushed", "speech_id": speech_id}))

        async for msg in ws:
            if isinstance(msg, bytes):
                await ws.send(jdump({"type": "Error", "code": "MESSAGE-0000",
                                     "description": "Unable to parse the message."}))
                await self._close(ws, rec, 1000, "")
                return
            kind = json.loads(msg).get("type")
            if kind == "Speak":
                pending.append(str(json.loads(msg).get("text", "")))
            elif kind == "Flush" and pending:
                await synthesize()
            elif kind == "Close":
                if pending:
                    await synthesize()
                await ws.send(jdump({"type": "SessionMetadata",
                                     "total_audio_duration_ms": totals["audio_ms"],
                                     "total_input_character_count": totals["chars"],
                                     "total_billable_character_count": totals["chars"]}))
                await self._close(ws, rec, 1000, "")
                return

    # ------------------------------------------------------------------ Voice Agent
    async def agent(self, ws: ServerConnection, rec: dict) -> None:
        rid = rec["request_id"]
        await ws.send(jdump({"type": "Welcome", "request_id": rid}))  # at once
        settings = None
        total = 0
        answered = False
        async for msg in ws:
            if isinstance(msg, bytes):
                if settings is None:
                    await ws.send(jdump({
                        "type": "Error", "code": "NON_SETTINGS_MESSAGE_BEFORE_SETTINGS",
                        "description": "The first message must be a Settings message."}))
                    rec["audio_bytes"] = total
                    await self._close(ws, rec, 1000, "")
                    return
                total += len(msg)
                rec["audio_bytes"] = total
                inp = (settings.get("audio") or {}).get("input") or {}
                bps = int(inp.get("sample_rate", 24000)) * 2
                if not answered and total >= bps:  # one turn after 1 s of audio
                    answered = True
                    await self._agent_turn(ws, rate=int(((settings.get("audio") or {}).get(
                        "output") or {}).get("sample_rate", 24000)))
                continue
            obj = json.loads(msg)
            kind = obj.get("type")
            if kind == "Settings":
                if settings is not None:
                    await ws.send(jdump({"type": "Error", "code": "SETTINGS_ALREADY_APPLIED",
                                         "description": "Settings were already applied."}))
                    await self._close(ws, rec, 1000, "")
                    return
                settings = obj
                await ws.send(jdump({"type": "SettingsApplied"}))
            # KeepAlive and the rest: nothing to answer

    async def _agent_turn(self, ws: ServerConnection, rate: int) -> None:
        reply = "Sure, the test tone came through."
        for obj in ({"type": "UserStartedSpeaking"},
                    {"type": "ConversationText", "role": "user", "content": "hello agent"},
                    {"type": "AgentThinking", "content": ""},
                    {"type": "ConversationText", "role": "assistant", "content": reply},
                    {"type": "AgentStartedSpeaking", "total_latency": 0.61,
                     "tts_latency": 0.18, "ttt_latency": 0.43}):
            await ws.send(jdump(obj))
        audio = tts_audio(reply[:10], rate)
        chunk = rate * 2 // 10
        for i in range(0, len(audio), chunk):
            await ws.send(audio[i:i + chunk])
        await ws.send(jdump({"type": "AgentAudioDone"}))
        await ws.send(jdump({"type": "LatencyReport", "stt_latency": 0.12,
                             "ttt_text_latency": 0.43, "tts_latency": 0.18,
                             "total_latency": 0.61}))

    # ------------------------------------------------------------------ running
    def serve(self, host: str, port: int, *, ssl_context: Optional[ssl.SSLContext] = None,
              compression: Optional[str] = None):
        return serve(self.handler, host, port, process_request=self.process_request,
                     process_response=self.process_response, compression=compression,
                     ping_interval=None, close_timeout=5, max_size=2**22, ssl=ssl_context)


def tts_audio(text: str, rate: int) -> bytes:
    """Deterministic 'speech': 40 ms of a tone per character, linear16 mono."""
    n = int(len(text) * 0.04 * rate)
    out = bytearray()
    for i in range(n):
        f = 220.0 + 110.0 * ((i // int(0.04 * rate)) % 4)
        out += struct.pack("<h", int(6000 * math.sin(2 * math.pi * f * i / rate)))
    return bytes(out)


# ---------------------------------------------------------------------- raw WebSocket server
def ws_frame(opcode: int, payload: bytes, fin: bool = True, mask: Optional[bytes] = None) -> bytes:
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return head + mask + payload
    return head + payload


async def read_ws_frame(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if b1 & 0x80 else None
    data = await reader.readexactly(n)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return b0 & 0x0F, bool(b0 & 0x80), data


class RawFragmentServer:
    """Sends "Hello, " + "fragmented " + "world" as three fragments, a ping between 1 and 2."""

    FRAGMENTS = [b"Hello, ", b"fragmented ", b"world"]
    PING = b"ping-1"

    def __init__(self, request_id: str = "d9c0a1e2-0000-4000-8000-000000000001"):
        self.request_id = request_id
        self.facts: dict = {"pong": None, "client_close": None}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = None
        for line in head.decode("latin-1").split("\r\n")[1:]:
            if line.lower().startswith("sec-websocket-key:"):
                key = line.split(":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n"
                      f"dg-request-id: {self.request_id}\r\n\r\n").encode())
        await writer.drain()
        await asyncio.sleep(0.1)
        f1, f2, f3 = self.FRAGMENTS
        for data in (ws_frame(0x1, f1, fin=False), ws_frame(0x9, self.PING),
                     ws_frame(0x0, f2, fin=False), ws_frame(0x0, f3, fin=True)):
            writer.write(data)
            await writer.drain()
            await asyncio.sleep(0.1)
        try:
            while True:
                opcode, _fin, data = await asyncio.wait_for(read_ws_frame(reader), 10)
                if opcode == 0xA:
                    self.facts["pong"] = data.decode()
                elif opcode == 0x8:
                    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                    self.facts["client_close"] = [code, data[2:].decode()]
                    writer.write(ws_frame(0x8, data))  # echo the close payload
                    await writer.drain()
                    break
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass

    async def start(self, host: str, port: int) -> asyncio.base_events.Server:
        return await asyncio.start_server(self.handle, host, port)


# ---------------------------------------------------------------------- TLS helpers
def make_self_signed(directory: str) -> tuple[str, str]:
    """A throwaway RSA-2048 self-signed certificate for localhost / 127.0.0.1 / ::1."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dgcap test fixtures")])
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path = os.path.join(directory, "server.crt")
    key_path = os.path.join(directory, "server.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


# ---------------------------------------------------------------------- CLI
async def _main(args: argparse.Namespace) -> None:
    ctx = None
    if args.tls:
        d = tempfile.mkdtemp(prefix="fakedg-")
        ctx = server_ssl_context(*make_self_signed(d))
    dg = FakeDeepgram(log=lambda e: print(e, file=sys.stderr))
    async with dg.serve(args.host, args.port, ssl_context=ctx,
                        compression="deflate" if args.deflate else None):
        print(f"fake Deepgram on {'wss' if args.tls else 'ws'}://{args.host}:{args.port} "
              f"(key {API_KEY})", file=sys.stderr)
        await asyncio.Future()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="loopback address only")
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--deflate", action="store_true")
    a = ap.parse_args()
    if a.host not in ("127.0.0.1", "::1", "localhost"):
        ap.error("loopback only")
    try:
        asyncio.run(_main(a))
    except KeyboardInterrupt:
        pass
