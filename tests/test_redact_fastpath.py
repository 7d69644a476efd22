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
