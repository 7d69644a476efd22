"""Fuzz the whole pipeline: a capture file in, every output format out.

Property: analyze_capture() raises nothing but CaptureError (with a one-line message);
redaction, the JSON report and every renderer of `dgcap report` run without raising on
whatever the capture contained.  Seeded with the sample captures; libFuzzer's mutations
flip bytes, cut records and splice files.
"""
import io
import json
import os
import tempfile
import zlib

from _common import instrument, main

with instrument():
    from analyzer.capture import CaptureError
    from analyzer.model import Report
    from analyzer.pipeline import Options, analyze_capture
    from analyzer.redact import redact_session

_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
_FD, _PATH = tempfile.mkstemp(prefix="dgcap-fuzz-pipeline-", dir=_DIR)
os.close(_FD)
# Rendering every format costs more than the analysis: by default one input in 8 is rendered
# (chosen by content, so a crashing input reproduces); DGCAP_FUZZ_RENDER=all|none.
RENDER = os.environ.get("DGCAP_FUZZ_RENDER", "some")


def render_all(report) -> None:
    from rich.console import Console
    from analyzer.commands.report import FORMATS
    from analyzer.report.rich_report import render_rich
    text = json.dumps(report.to_json(), ensure_ascii=False, allow_nan=False)  # strict JSON
    assert text
    for fmt in FORMATS:
        if fmt == "rich":
            console = Console(file=io.StringIO(), width=120, record=False)
            render_rich(report, console, transcript=True)
        elif fmt != "json":
            _render_other(fmt, report)


def _render_other(fmt, report) -> None:
    # Formats added later (markdown, html) are reached through the report command's render().
    import argparse
    from analyzer.commands import report as command
    out = _PATH + "." + fmt
    args = argparse.Namespace(format=fmt, output=out, transcript=True)
    try:
        command.render(report, args)
    finally:
        if os.path.exists(out):
            os.unlink(out)


def check_file(path: str, options=None, render: bool = True) -> None:
    try:
        report = analyze_capture(path, options or Options())
    except CaptureError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        return
    for session in report.sessions:
        redact_session(session)
    if render:
        render_all(Report(captures=[report], options={"secrets_redacted": True}))
    else:
        json.dumps(report.to_json(), allow_nan=False)


def TestOneInput(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    render = RENDER == "all" or (RENDER == "some" and zlib.crc32(data) % 8 == 0)
    check_file(_PATH, render=render)


if __name__ == "__main__":
    try:
        main(TestOneInput)
    finally:
        os.unlink(_PATH)
