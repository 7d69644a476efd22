"""The Deepgram layer on hostile messages: what a peer sends never breaks the analysis.

Messages are generated around Deepgram's own shapes (Results, Metadata, TurnInfo, Error,
Settings, control messages...) with every field of any JSON type, extreme numbers (huge,
negative, 1e308, NaN/Infinity as Python's json accepts them), deep nesting and junk text;
sessions on every endpoint, including failed handshakes.  The analyzer, the finding rules, the
diagnosis and the redaction must not raise; the report must serialise; redaction must be
idempotent and leave no credential behind.
"""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.deepgram import DeepgramAnalyzer
from analyzer.deepgram.diagnosis import diagnose
from analyzer.findings.registry import RuleContext, run_rules
from analyzer.http.body_content import loads_json
from analyzer.model import CloseFrame, Handshake, Message, Session
from analyzer.redact import redact_session

SECRET = "dgfuzz_fedcba9876543210fedcba9876543210"
TYPES = ["Results", "Metadata", "UtteranceEnd", "SpeechStarted", "Connected", "TurnInfo", "Flushed",
         "Cleared", "Welcome", "SettingsApplied", "ConversationText", "Warning", "Error", "History",
         "KeepAlive", "CloseStream", "Finalize", "Speak", "Flush", "Close", "Settings", "Configure",
         "", "results", "Unknown"]
KEYS = ["type", "channel", "alternatives", "transcript", "confidence", "start", "duration", "is_final",
        "speech_final", "from_finalize", "channel_index", "request_id", "sha256", "channels", "created",
        "event", "audio_window_end", "role", "content", "description", "code", "err_code", "err_msg",
        "message", "variant", "text", "audio", "input", "encoding", "sample_rate", "model_name",
        "metadata", "words", "api_key", "authorization", "credentials", "headers"]

numbers = st.one_of(st.integers(-(1 << 70), 1 << 70), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, -1, 1e308, -1e308, 5e-324, 2 ** 63]))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=30), st.sampled_from(TYPES))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=6)), max_leaves=25)


@st.composite
def messages(draw):
    kind = draw(st.integers(0, 9))
    if kind == 0:  # not JSON, or JSON that is not an object
        return draw(st.one_of(st.text(max_size=80), st.builds(json.dumps, values))).encode("utf-8", "surrogatepass")
    obj = draw(st.dictionaries(st.sampled_from(KEYS), values, max_size=8))
    obj["type"] = draw(st.sampled_from(TYPES))
    if obj["type"] == "Results" and draw(st.booleans()):
        obj["channel"] = {"alternatives": [{"transcript": draw(st.text(max_size=40)),
                                            "confidence": draw(numbers)}]}
        obj["start"], obj["duration"] = draw(numbers), draw(numbers)
        obj["is_final"] = draw(st.booleans())
    return json.dumps(obj, allow_nan=True).encode()


@st.composite
def sessions(draw):
    path = draw(st.sampled_from(["/v1/listen", "/v2/listen", "/v1/speak", "/v1/agent/converse", None,
                                 "/other"]))
    status = draw(st.sampled_from([101, 101, 400, 401, 429]))
    query = draw(st.dictionaries(st.sampled_from(["model", "encoding", "sample_rate", "channels",
                                                  "language", "token", "interim_results"]),
                                 st.one_of(st.text(max_size=12), st.sampled_from(["linear16", "16000", "-1",
                                                                                  "99999999999999999999"])),
                                 max_size=5))
    msgs = draw(st.lists(st.tuples(st.integers(0, 1), st.integers(1, 2), messages(),
                                   st.integers(0, 1 << 40), st.floats(0, 30)), max_size=15))
    close = draw(st.one_of(st.none(), st.tuples(st.integers(0, 65535), st.text(max_size=60))))
    body = draw(st.one_of(st.none(), st.builds(json.dumps, values)))
    return path, status, query, msgs, close, body


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions())
def test_hostile_deepgram_sessions_never_break_the_analysis(case):
    path, status, query, msgs, close, body = case
    hs = Handshake(method="GET", path=path, target=(path or "") + "?x", query=dict(query), status=status,
                   request_frame=4, request_time=1000.0, response_frame=6, response_time=1000.05,
                   request_headers=[["Host", "api.deepgram.com"], ["Authorization", f"Token {SECRET}"]])
    if status != 101:
        hs.body = body
        try:  # as the HTTP layer parses a peer's body (NaN and Infinity are None there)
            parsed = loads_json(body) if body else None
        except ValueError:
            parsed = None
        hs.body_json = parsed if isinstance(parsed, dict) else None
        hs.dg_error = "bad"
    session = Session(index=1, client="10.0.0.1:5000", server="10.0.0.2:443", tcp_stream=0,
                      websocket=status == 101, handshake=hs)
    dg = DeepgramAnalyzer(hs)
    t = 1000.1
    for frame, (direction, opcode, payload, extra, dt) in enumerate(msgs, start=10):
        t += dt
        size = len(payload) + (extra if opcode == 2 else 0)
        dg.message(direction, opcode, payload[:64] if opcode == 2 else payload, size, frame, t)
        if opcode == 1:
            session.messages.append(Message(direction, 1, payload.decode("utf-8", "replace"), frame, t, size))
    if close is not None:
        session.close.server = CloseFrame(close[0], close[1], 999, t + 1)
        session.close.initiator = "server"
        session.close.tcp_end = "fin"
    dg.finish(session)
    session.findings = run_rules(session, RuleContext())
    sentence = diagnose(session)
    assert isinstance(sentence, str) and sentence
    session.diagnosis = sentence
    json.dumps(session.to_json(), allow_nan=False)  # strict JSON whatever the peer sent
    redact_session(session)
    once = json.dumps(session.to_json(), sort_keys=True)
    redact_session(session)
    assert json.dumps(session.to_json(), sort_keys=True) == once
    assert SECRET not in once
    latency = session.to_json()["latency"]
    assert all(latency[key] is None or isinstance(latency[key], (int, float)) for key in ("p50", "p95", "max"))
