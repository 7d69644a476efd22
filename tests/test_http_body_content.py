"""JSON error bodies (Deepgram's two shapes) and safe text for any body."""
import pytest

from analyzer.http import body_text, parse_error_body

ERR_CODE_SHAPE = (b'{"err_code":"INSUFFICIENT_PERMISSIONS","err_msg":"Project does not have access to the '
                  b'requested model.","request_id":"r-1"}')
CATEGORY_SHAPE = (b'{"category":"INVALID_QUERY_PARAMETER","message":"No such model/language/tier combination '
                  b'found.","details":"language=english","request_id":"r-2"}')


def test_err_code_shape():
    assert parse_error_body(ERR_CODE_SHAPE, "application/json") == {
        "err_code": "INSUFFICIENT_PERMISSIONS",
        "err_msg": "Project does not have access to the requested model.", "request_id": "r-1"}


def test_category_shape_sniffed_without_a_content_type():
    assert parse_error_body(CATEGORY_SHAPE, None) == {
        "category": "INVALID_QUERY_PARAMETER", "message": "No such model/language/tier combination found.",
        "details": "language=english", "request_id": "r-2"}


def test_json_sniffed_despite_a_wrong_content_type_and_leading_whitespace_and_bom():
    assert parse_error_body(b"\xef\xbb\xbf \r\n{\"a\": 1}", "text/plain") == {"a": 1}


def test_json_content_type_with_parameters():
    assert parse_error_body(b' {"a":"\xc3\xa9"}', "Application/JSON; charset=utf-8") == {"a": "é"}


@pytest.mark.parametrize("body, content_type", [
    (None, "application/json"),
    (b"", "application/json"),
    (b"Invalid credentials.", "text/plain"),
    (b"Invalid credentials.", None),
    (b"<html>502 Bad Gateway</html>", "text/html"),
    (b'{"truncated": ', "application/json"),
    (b"[1, 2]", "application/json"),
    (b'"just a string"', "application/json"),
    (b'{"a": "\xff"}', None),
    (b"{" * 100000, None),
])
def test_not_a_json_object(body, content_type):
    assert parse_error_body(body, content_type) is None


def test_body_text_small_bodies():
    assert body_text(b"Invalid credentials.") == "Invalid credentials."
    assert body_text(b"caf\xc3\xa9 \xff!") == "café \ufffd!"
    assert body_text(b"") == ""
    assert body_text(None) == ""
    assert body_text(bytearray(b"ok")) == "ok"


def test_body_text_at_the_cap_has_no_marker():
    assert body_text(b"a" * 65536) == "a" * 65536


def test_body_text_over_the_cap_says_how_much_is_missing():
    assert body_text(b"a" * 65536 + b"0123456789") == "a" * 65536 + "[... 10 bytes more]"


def test_body_text_does_not_cut_a_character_in_half():
    # "é" is 2 bytes and straddles the 64 KiB boundary: it goes into the count, not a U+FFFD.
    body = b"a" * 65535 + "é".encode() + b"zz"
    assert body_text(body) == "a" * 65535 + "[... 4 bytes more]"


def test_loads_json_depth_limit_is_exact_with_and_without_the_bracket_count_shortcut():
    from analyzer.http.body_content import MAX_JSON_DEPTH, loads_json
    # 64 nested arrays: the outermost is depth 0, the innermost depth 63 -> accepted.
    deepest_accepted: list = []
    for _ in range(MAX_JSON_DEPTH - 1):
        deepest_accepted = [deepest_accepted]
    assert loads_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) == deepest_accepted
    for text in ("[" * 65 + "]" * 65, '{"a":' * 65 + "1" + "}" * 65):
        with pytest.raises(ValueError, match="nested deeper than 64 levels"):
            loads_json(text)
        with pytest.raises(ValueError, match="nested deeper than 64 levels"):
            loads_json(text.encode("utf-16"))  # json.loads detects UTF-16 bytes
    # Brackets inside strings are counted but do not nest: the full walk then accepts it.
    assert loads_json('["' + "[" * 100 + '", {"b": [1]}]') == ["[" * 100, {"b": [1]}]
    assert loads_json(b'{"type":"Results","channel":{"alternatives":[{"words":[]}]}}') == {
        "type": "Results", "channel": {"alternatives": [{"words": []}]}}
