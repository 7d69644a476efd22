"""Sec-WebSocket-Accept, Sec-WebSocket-Extensions parsing, and the permessage-deflate agreement."""
import pytest

from analyzer.http import deflate_agreement, parse_extensions, websocket_accept

DEFAULTS = {"server_no_context_takeover": False, "client_no_context_takeover": False,
            "server_max_window_bits": 15, "client_max_window_bits": 15}


def test_rfc6455_example_key():
    assert websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_accept_of_another_key():
    # The example pair used by the Wikipedia "WebSocket" article.
    assert websocket_accept("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk="


@pytest.mark.parametrize("value, expected", [
    ("permessage-deflate; client_max_window_bits",
     [("permessage-deflate", {"client_max_window_bits": None})]),
    ("permessage-deflate",
     [("permessage-deflate", {})]),
    # Several offers, as one header or several headers joined with ",".
    ("permessage-deflate; client_max_window_bits=10; server_no_context_takeover, permessage-deflate,"
     "x-webkit-deflate-frame",
     [("permessage-deflate", {"client_max_window_bits": "10", "server_no_context_takeover": None}),
      ("permessage-deflate", {}), ("x-webkit-deflate-frame", {})]),
    # Quoted values may hold separators and escapes; whitespace around ';' and '=' is allowed.
    ('permessage-deflate ; server_max_window_bits = "10" ; foo="a,b;c\\"d", other',
     [("permessage-deflate", {"server_max_window_bits": "10", "foo": 'a,b;c"d'}), ("other", {})]),
    # A repeated parameter keeps its first value.
    ("permessage-deflate; server_max_window_bits=10; server_max_window_bits=12",
     [("permessage-deflate", {"server_max_window_bits": "10"})]),
    ("", []),
    (None, []),
    (" , ,", []),
    # Text outside the grammar is skipped up to the next comma, the rest still parses.
    ("bad ext; a=1, good; b", [("bad", {}), ("good", {"b": None})]),
    ('x; q="unterminated, y', [("x", {"q": "unterminated, y"})]),
])
def test_parse_extensions(value, expected):
    assert parse_extensions(value) == expected


@pytest.mark.parametrize("value", [None, "", "x-webkit-deflate-frame", "permessage-deflatex"])
def test_no_deflate_agreed(value):
    assert deflate_agreement(value) is None


def test_deflate_defaults():
    assert deflate_agreement("permessage-deflate") == DEFAULTS
    assert deflate_agreement("Permessage-Deflate") == DEFAULTS


def test_deflate_explicit_parameters():
    assert deflate_agreement("permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
                             " server_max_window_bits=10; client_max_window_bits=\"9\"") == {
        "server_no_context_takeover": True, "client_no_context_takeover": True,
        "server_max_window_bits": 10, "client_max_window_bits": 9}


def test_deflate_found_among_other_extensions():
    assert deflate_agreement("x-foo; a=1, permessage-deflate; client_max_window_bits=8") == {
        **DEFAULTS, "client_max_window_bits": 8}


@pytest.mark.parametrize("value, usable, error", [
    ("permessage-deflate; client_max_window_bits", {},
     "client_max_window_bits without a value"),
    ("permessage-deflate; server_max_window_bits=16; client_max_window_bits=12", {"client_max_window_bits": 12},
     "server_max_window_bits='16' is not 8..15"),
    ("permessage-deflate; server_max_window_bits=09", {}, "server_max_window_bits='09' is not 8..15"),
    ("permessage-deflate; server_max_window_bits=7", {}, "server_max_window_bits='7' is not 8..15"),
    ("permessage-deflate; server_no_context_takeover=1", {"server_no_context_takeover": True},
     "server_no_context_takeover must not have a value (got '1')"),
    ("permessage-deflate; server_max_window_bits=10; server_max_window_bits=11", {"server_max_window_bits": 10},
     "duplicate parameter server_max_window_bits"),
    ("permessage-deflate; mystery=1; client_no_context_takeover", {"client_no_context_takeover": True},
     "unknown parameter mystery"),
    ("permessage-deflate; server_max_window_bits=9, permessage-deflate", {"server_max_window_bits": 9},
     "permessage-deflate appears 2 times"),
    ("permessage-deflate; client_max_window_bits=99; x", {},
     "client_max_window_bits='99' is not 8..15; unknown parameter x"),
])
def test_deflate_invalid_values_report_an_error_and_keep_what_is_usable(value, usable, error):
    assert deflate_agreement(value) == {**DEFAULTS, **usable, "error": error}
