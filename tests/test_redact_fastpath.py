"""The redaction fast path (skip a pattern when its required word is absent) must change nothing."""
import re

import pytest
from hypothesis import given, settings, strategies as st

from analyzer import redact

FRAGMENTS = ["Authorization: ", "authorİzation: ", "Authorızation: ", "Token ", "bearer ", "BEARER, ",
             "Sec-WebSocket-Protocol: token, ", "?token=", "&KEY=", '"access_token": "', '"Credentials":"',
             "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6IjAxOGNmZWFi.FsquetBp_jsIDzBslWyyTP", "sk-abcdefghijklmnopqrstuv",
             "dgtest_0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef01234567",
             '{"type":"Results","transcript":"hello"}', " ", "\r\n", ",", '"', "é", "ı"]


def _reference(s: str) -> str:
    for _needs, pattern, replace in redact._PATTERNS:
        s = pattern.sub(replace, s)
    return s


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=12))
def test_fast_path_equals_every_pattern_applied(parts):
    s = "".join(parts)
    assert redact._redact_once(s, ()) == _reference(s)


def test_dotless_i_authorization_is_still_masked():
    assert redact.redact_text("Authorızation: Basic dXNlcjpwYXNzd29yZGxvbmdlbm91Z2g=") == \
        "Authorızation: Basic ****Z2g="


def test_every_secret_key_holds_a_stem():
    # _may_hold_secret_key and the JSON-secret pattern test for these stems first.
    for key in redact.SECRET_JSON_KEYS | {redact.HEADERS_KEY}:
        assert any(stem in key for stem in redact.SECRET_KEY_STEMS), key


KEY_FRAGMENTS = [f'"{k}"' for k in sorted(redact.SECRET_JSON_KEYS)] + [
    '"Headers"', '"API_KEY"', "wss://", '"key"', "token", '"secrets"', "\\u0041", "é"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(KEY_FRAGMENTS + FRAGMENTS) | st.text(max_size=6), max_size=10))
def test_may_hold_secret_key_equals_its_definition(parts):
    text = "".join(parts)
    low = text.lower()
    expected = ("\\u" in text or not text.isascii()
                or any(f'"{key}"' in low for key in redact.SECRET_JSON_KEYS)
                or f'"{redact.HEADERS_KEY}"' in low or "://" in low)
    assert redact._may_hold_secret_key(text) == expected


# The 40-hex pre-check (_may_hold_hex40) and the per-session decision (redact_session decides
# _may_hold_secret_key once per message, for the secrets and for the masking).

HEX_FRAGMENTS = ["0123456789abcdef0123456789abcdef01234567", "0123456789abcdef", "ABCDEF", "abcdef",
                 "9", "f", "g", "x", "é", "ı", "\ud800", "\u00e9" * 3, "🙂", "-", '"', " "]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(HEX_FRAGMENTS) | st.text(alphabet="0123456789abcdefABCDEF é", max_size=45),
                max_size=8))
def test_hex40_precheck_never_skips_a_match(parts):
    s = "".join(parts)
    if redact._HEX40_RE.search(s):
        assert redact._may_hold_hex40(s)
    # ... and it is exact: a run of 40 lower-case hex digits in the text.
    assert redact._may_hold_hex40(s) == (re.search(r"[0-9a-f]{40}", s) is not None)


KEY40 = "0123456789abcdef0123456789abcdef01234567"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6IjAxOGNmZWFi.FsquetBp_jsIDzBslWyyTP"


def _results(transcript: str) -> str:
    return ('{"type":"Results","channel_index":[0,1],"is_final":true,"channel":{"alternatives":'
            f'[{{"transcript":"{transcript}","confidence":0.9}}]}},'
            '"metadata":{"request_id":"30b02280-ff05-4a31-872d-67a0ad70bb95"}}')


@pytest.mark.parametrize("text, must_not_contain", [
    (_results(f"my key is {KEY40} ok"), KEY40),                      # 40-hex inside a transcript
    (_results(f"été {KEY40}"), KEY40),                               # ... in non-ASCII text
    (_results(KEY40)[:-2] + KEY40, KEY40),                           # ... at the very end
    (_results(f"the jwt {JWT} here"), JWT),                          # a JWT in a transcript
    (_results("callback https://user:hunter2hunter2@example.com/x"), "hunter2hunter2"),  # URL credential
    (_results("callback https%3A%2F%2Fuser%3Ahunter2hunter2%40example.com"), "hunter2hunter2"),
    ('{"type":"Settings","api\\u005fkey":"s3cr3t-provider-key"}', "s3cr3t-provider-key"),  # key split by an escape
    ('{"type":"Settings","API_KEY":"s3cr3t-provider-key"}', "s3cr3t-provider-key"),
    (_results("Authorization: Token dgtest_0123456789abcdef"), "dgtest_0123456789abcdef"),
])
def test_results_like_texts_that_the_fast_path_must_not_skip(text, must_not_contain):
    assert must_not_contain in text
    assert must_not_contain not in redact.redact_json_text(text)
    assert must_not_contain not in redact.redact_text(text) or "\\u" in text or "API_KEY" in text


def test_a_literal_secret_inside_a_results_transcript_is_masked():
    secret = "dgbench_0123456789abcdef"
    text = _results(f"say {secret} twice {secret}")
    out = redact.redact_json_text(text, [secret])
    assert secret not in out and out.count("****cdef") == 2
    # redact_text given the lower-cased text (as redact_json_text passes it) decides the same.
    assert redact._redact_text(text, (secret,), text.lower()) == redact.redact_text(text, [secret])


class _Msg:
    def __init__(self, text):
        self.text = text


class _Session:
    """What redact_session reads: the structured places, the messages, the summaries."""
    def __init__(self, texts, headers):
        from analyzer.model import Close, Handshake
        self.handshake = Handshake(request_headers=headers)
        self.messages = [_Msg(t) for t in texts]
        self.close = Close()
        self.findings, self.anomalies = [], []
        self.tls = self.audio = self.latency = self.message_counts = self.deepgram = None
        self.transcript = self.diagnosis = None


def test_redact_session_masks_messages_as_redact_json_text_does():
    key = "dgtest_0123456789abcdef0123456789abcdef"
    texts = [_results("hello"), _results(f"echo {key}"), _results(f"x {KEY40}"), None, "",
             '{"type":"Settings","agent":{"think":{"endpoint":{"url":"https://a.example",'
             '"headers":{"x-key":"provider-secret-123"}}}}}', "plain provider-secret-123 text",
             '{"api\\u005fkey": "another-secret-456"}', "another-secret-456 again", "é " + KEY40]
    headers = [["Authorization", f"Token {key}"]]
    session = _Session(texts, [list(h) for h in headers])
    literals = redact.session_secrets(_Session(texts, [list(h) for h in headers]))
    assert key in literals and "provider-secret-123" in literals and "another-secret-456" in literals
    expected = [redact.redact_json_text(t, literals) for t in texts]
    redact.redact_session(session)
    assert [m.text for m in session.messages] == expected
    for secret in (key, KEY40, "provider-secret-123", "another-secret-456"):
        assert not any(secret in (m.text or "") for m in session.messages)
