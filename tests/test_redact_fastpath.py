"""The redaction fast path (skip a pattern when its required word is absent) must change nothing."""
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
