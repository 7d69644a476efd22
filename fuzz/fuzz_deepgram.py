"""Fuzz the Deepgram layer: message classification, the session analyzer, its finding rules,
the diagnosis and the redaction of what the peer sent.

Input: byte 0 picks the request path / status / headers; then pieces separated by
b"\\xff\\xfe\\xfd": the first is the query string, each other one a message whose first
byte says direction (bit 0), opcode (bit 1: binary) and, for binary, whether its size is
declared larger than what was kept (bit 2).
Properties: nothing raises; the session's JSON serialises; redaction is idempotent and
leaves no Authorization credential behind.
"""
import json

from _common import Input, instrument, main

with instrument():
    from analyzer.deepgram import DeepgramAnalyzer
    from analyzer.deepgram.diagnosis import diagnose
    from analyzer.findings.registry import RuleContext, run_rules
    from analyzer.http.head import parse_query
    from analyzer.model import CloseFrame, Handshake, Message, Session
    from analyzer.redact import redact_session

SEP = b"\xff\xfe\xfd"
PATHS = ["/v1/listen", "/v2/listen", "/v1/speak", "/v1/agent/converse", None, "/x/v1/listen",
         "/agent", "/chat"]
STATUSES = [101, 101, 101, 400, 401, 402, 429, 500]
SECRET = "dgfuzz_0123456789abcdef0123456789abcdef"


def TestOneInput(data: bytes) -> None:
    inp = Input(data)
    sel = inp.byte()
    pieces = inp.rest().split(SEP)
    query_text = pieces[0][:2048].decode("utf-8", "replace")
    hs = Handshake(method="GET", path=PATHS[sel & 7], status=STATUSES[sel >> 3 & 7])
    hs.query = parse_query(query_text)
    hs.target = (hs.path or "") + "?" + query_text
    hs.request_headers = [["Host", "api.deepgram.com" if sel & 0x40 else "localhost"],
                          ["Authorization", ("Bearer " if sel & 0x80 else "Token ") + SECRET]]
    if hs.status != 101:
        hs.response_headers = [["dg-error", query_text[:100]], ["dg-request-id", "r-1"]]
        hs.dg_error, hs.dg_request_id = query_text[:100], "r-1"
        hs.body = pieces[1].decode("utf-8", "replace") if len(pieces) > 1 else None
        try:
            parsed = json.loads(hs.body) if hs.body else None
        except ValueError:
            parsed = None
        hs.body_json = parsed if isinstance(parsed, dict) else None
    session = Session(index=1, client="10.0.0.1:5000", server="10.0.0.2:443", tcp_stream=0)
    session.handshake = hs
    session.websocket = hs.status == 101
    dg = DeepgramAnalyzer(hs)
    t = 1000.0
    for frame, piece in enumerate(pieces[1:], start=10):
        if not piece:
            continue
        head, payload = piece[0], piece[1:]
        direction = head & 1
        opcode = 2 if head & 2 else 1
        size = len(payload) + (head >> 3) * 1000 if opcode == 2 and head & 4 else len(payload)
        t += (head >> 4) * 0.75
        dg.message(direction, opcode, payload, size, frame, t)
        if opcode == 1:
            session.messages.append(Message(direction, 1, payload.decode("utf-8", "replace"), frame,
                                            t, size))
    if len(pieces) > 2 and pieces[-1][:1] == b"\x08":
        reason = pieces[-1][1:124].decode("utf-8", "replace")
        session.close.server = CloseFrame(1011 if sel & 1 else 1008, reason, frame, t)
        session.close.initiator = "server"
        session.close.tcp_end = "fin"
    dg.finish(session)
    session.findings = run_rules(session, RuleContext())
    session.diagnosis = diagnose(session)
    json.dumps(session.to_json(), allow_nan=False)  # strict JSON: no NaN/Infinity from the peer
    redact_session(session)
    once = json.dumps(session.to_json(), sort_keys=True)
    redact_session(session)
    twice = json.dumps(session.to_json(), sort_keys=True)
    assert once == twice, "redaction is not idempotent"
    assert SECRET not in once, "the Authorization credential survived redaction"


if __name__ == "__main__":
    main(TestOneInput)
