"""Every subcommand's --help: a description, and the exit codes in the same block at the end."""
from __future__ import annotations

import pytest

from analyzer.cli import COMMANDS, build_parser

REPORT_CODES = ("exit codes:\n"
                "  0  no error finding\n"
                "  1  at least one error finding\n"
                "  2  input or usage error (one line on stderr)")
EXIT_CODES = {
    "report": REPORT_CODES,
    "watch": REPORT_CODES,
    "audio": ("exit codes:\n"
              "  0  every selected session written\n"
              "  2  input or usage error (bad capture, no such session, no audio, audio that\n"
              "     cannot be wrapped; one line on stderr)"),
    "verify": ("exit codes:\n"
               "  0  the engines agree on every capture\n"
               "  1  they disagree on at least one capture\n"
               "  2  input or usage error, a capture that could not be read, or tshark missing\n"
               "     (one line on stderr each)"),
    "extract": ("exit codes:\n"
                "  0  written\n"
                "  2  input or usage error (bad capture, no such session or finding; one line\n"
                "     on stderr)"),
    "messages": ("exit codes:\n"
                 "  0  printed\n"
                 "  2  input or usage error (bad capture, no such session, no WebSocket session;\n"
                 "     one line on stderr)"),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_a_description_and_ends_with_the_exit_codes(command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    parser, _ = build_parser()
    sub = next(a for a in parser._subparsers._group_actions).choices[command]
    text = sub.format_help()
    assert sub.description and len(sub.description) > 40
    assert sub.description.split()[0] in text.split("\n\n")[1]  # shown after the usage
    assert text.endswith(EXIT_CODES[command] + "\n")


def test_every_command_is_listed():
    assert sorted(EXIT_CODES) == sorted(COMMANDS)
