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


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_parsed_alone_has_the_same_help(command, monkeypatch):
    # `dgcap COMMAND ...` builds only COMMAND's parser (cli.commands_to_load): same help text.
    monkeypatch.setenv("COLUMNS", "100")
    full, _ = build_parser()
    alone, modules = build_parser([command])
    assert list(modules) == [command]

    def sub(parser):
        return next(a for a in parser._subparsers._group_actions).choices[command]
    assert sub(alone).format_help() == sub(full).format_help()
    assert sub(alone).prog == sub(full).prog == f"dgcap {command}"


def test_commands_to_load():
    from analyzer.cli import commands_to_load
    assert commands_to_load(["--version"]) == []
    assert commands_to_load(["report", "--format", "json", "x.pcap"]) == ["report"]
    assert commands_to_load(["messages", "--help"]) == ["messages"]
    # Help, an option first, an unknown or missing command: the full parser (it lists them all).
    for argv in ([], ["--help"], ["-h", "report"], ["--version", "report"], ["reprot"], ["--", "report"]):
        assert commands_to_load(argv) is None, argv


def test_version_loads_no_command():
    import os
    import subprocess
    import sys
    code = ("import sys\nfrom analyzer import cli\ntry:\n    cli.main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('analyzer.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.stdout.startswith("dgcap 0.1.0 (")
    loaded = out.stdout.splitlines()[-1]
    assert "analyzer.commands" not in loaded and "analyzer.model" not in loaded, loaded
