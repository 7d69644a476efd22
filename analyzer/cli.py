"""Command line entry point: `dgcap COMMAND ...`.

Each command lives in analyzer/commands/<name>.py with `add_parser(subparsers)` and
`run(args) -> exit code`, so adding a command touches one new file and COMMANDS here.

Exit codes: 0 no error finding, 1 at least one error finding, 2 input or usage error.
Bad input never produces a traceback: one line on stderr and exit 2 (or a partial
report that says what was lost).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from typing import Optional

from . import __version__
from .build_kind import build_kind

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2
INPUT_ERROR_HELP = "input or usage error (one line on stderr)"


def exit_codes_help(ok: str, findings: Optional[str] = None, input_error: str = INPUT_ERROR_HELP) -> str:
    """The "exit codes:" block that ends every command's --help (one line per code)."""
    lines = ["exit codes:", f"  0  {ok}"]
    if findings is not None:
        lines.append(f"  1  {findings}")
    lines.append(f"  2  {input_error}")
    return "\n".join(lines)


EXIT_CODES_HELP = exit_codes_help("no error finding", "at least one error finding")
COMMANDS = ["report", "audio", "watch", "verify", "extract", "messages"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other input error
        hint = f"dgcap {self.prog.split()[-1]} --help" if " " in self.prog else "dgcap --help"
        sys.stderr.write(f"dgcap: error: {message} (see '{hint}')\n")
        sys.exit(EXIT_INPUT)


def build_parser(commands: Optional[list[str]] = None) -> tuple[argparse.ArgumentParser, dict]:
    """The parser with the subcommands in `commands` (all of them by default)."""
    p = _Parser(prog="dgcap", description="Analyse Deepgram (and any) WebSocket sessions in pcap/pcapng captures.")
    p.add_argument("--version", action="version", version=f"dgcap {__version__} ({build_kind()})")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    modules = {}
    for name in COMMANDS if commands is None else commands:
        module = importlib.import_module(f".commands.{name}", __package__)
        module.add_parser(sub)
        modules[name] = module
    return p, modules


def commands_to_load(argv: list[str]) -> Optional[list[str]]:
    """The subcommands whose modules `dgcap argv` needs (None: all of them).

    Importing a command module imports what it needs (the analysis, the model), so
    `dgcap report ...` loads only report, and a lone --version none.  Anything else (help,
    an unknown command, an option first) gets the full parser: its usage lists every command.
    """
    if argv == ["--version"]:
        return []
    if argv and argv[0] in COMMANDS:
        return [argv[0]]
    return None


def main(argv: Optional[list[str]] = None) -> int:
    names = commands_to_load(sys.argv[1:] if argv is None else list(argv))
    if names is None or "report" in names:
        from .shards import idle_cpus
        idle_cpus.start()  # `report --shards auto` measures idle CPUs from here: over the start-up
    parser, modules = build_parser(names)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    try:
        return modules[args.command].run(args)
    except KeyboardInterrupt:
        sys.stderr.write("dgcap: interrupted\n")
        return EXIT_INPUT
    except BrokenPipeError:
        return EXIT_OK
    except OSError as e:  # -o into a missing folder or onto a directory, a full disk...
        where = f"{e.filename}: " if e.filename else ""
        error(f"{where}{e.strerror or e}")
        return EXIT_INPUT
    except Exception as e:  # a rendering bug must not become a traceback either
        if os.environ.get("DGCAP_DEBUG"):
            raise
        error(f"internal error: {type(e).__name__}: {e} (set DGCAP_DEBUG=1 for details; please report it)")
        return EXIT_INPUT


def write_output(text, path: Optional[str]) -> None:
    """stdout, or FILE written atomically: a reader never sees a half-written report.

    `text` is the report, or a function that writes it to the file it is given.
    """
    write = text if callable(text) else (lambda f: f.write(text))
    if not path:
        write(sys.stdout)
        return
    if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        # A device or FIFO (/dev/null, a pipe): write to it; replacing it would destroy it.
        with open(path, "w", encoding="utf-8") as f:
            write(f)
        return
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".dgcap-", dir=folder)
    except OSError as e:  # named after the report, not the temporary file
        raise OSError(e.errno, f"cannot write the report: {e.strerror}", path) from None
    try:
        # mkstemp makes the file private; a report gets the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, BrokenPipeError):
            raise OSError(e.errno, f"cannot write the report: {e.strerror or e}", path) from None
        raise


def error(msg: str) -> None:
    sys.stderr.write(f"dgcap: error: {msg}\n")


if __name__ == "__main__":
    sys.exit(main())
