"""`dgcap audio CAPTURE`: write each session's audio to a file you can play back.

Deepgram's troubleshooting guide asks users to "write the audio data to a file to
make sure it contains the expected audio and can be played back"; this does it from
the capture.  Two passes over the capture: the first is the normal analysis (which
sessions exist, their endpoint, encoding, sample rate, container), the second
streams the selected sessions' binary payloads to temporary files next to their
destination, which are renamed into place when complete.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional

from ..cli import EXIT_INPUT, EXIT_OK, error, exit_codes_help
from ..model import CLIENT, DIRECTION_NAMES, SERVER, Session
from ..websocket import OP_BINARY, OP_CONTINUATION, OP_TEXT
from .common import add_capture_arguments, analyze_args, analyze_or_explain, pick_session

# Server payload bytes kept per frame in the second pass (the pipeline only streams
# client payloads; server frames arrive whole through frame_hook).  Larger frames
# are cut there and the rest counted as missing.
SERVER_KEEP = 64 << 20

_EPILOG = """\
what is written:
  raw audio (encoding=linear16, linear32, mulaw or alaw) is wrapped in a WAV header
  with the request's sample_rate and channels (default 1); containerised audio (WAV,
  Ogg, WebM, FLAC, MP3, AAC, AMR) is written as sent, with its own extension.  The
  client's binary payloads are written exactly as Deepgram received them (JSON sent
  as binary included; permessage-deflate is undone).  /v1/speak audio uses the
  request's encoding and sample_rate, or Deepgram's defaults (linear16, 24000 Hz);
  agent audio the Settings message's audio.input / audio.output.  A sent WAV whose
  header sizes do not match the bytes captured gets them corrected.  Bytes missing
  from the capture are filled with silence and reported.  Encodings without a file
  form (raw opus, speex, g729, amr) and raw audio without an encoding or sample_rate
  are refused with exit status 2.

output names (-o):
  without -o             <capture-stem>.session<N>.<ext> in the current folder
  -o FILE                that file (one session; the extension is added if FILE has
                         none); with several sessions FILE's name gets .session<N>
                         inserted: -o out/call.wav -> out/call.session1.wav, ...
  -o FOLDER/             <capture-stem>.session<N>.<ext> inside FOLDER (an existing
                         folder, or any path ending in / which is created)
  -o PATTERN             a name with placeholders {n} (session number), {stem}
                         (capture name without extension) and {ext} (wav, ogg, ...),
                         e.g. -o 'audio/{stem}-{n}.{ext}'

prints one line per written file: path, format, bytes, seconds; files that could be
written are written even when another session fails.

""" + exit_codes_help("every selected session written", None,
                      "input or usage error (bad capture, no such session, no audio, audio that\n"
                      "     cannot be wrapped; one line on stderr)")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "audio", help="write each session's audio to a playable file (WAV, or the container as sent)",
        description="Write each WebSocket session's audio to a file, to check that it is the "
                    "expected audio and plays back.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_capture_arguments(p)
    p.add_argument("--session", type=int, metavar="N",
                   help="only session N (numbered as in `dgcap report`); default: every session with audio")
    p.add_argument("--direction", choices=("client", "server"),
                   help="whose audio: default the server's for /v1/speak (text-to-speech), the "
                        "client's otherwise (/v1/listen, /v2/listen, agent)")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="output file, folder or pattern (see below)")


class _Target:
    """One session direction being written."""

    def __init__(self, session: Session, direction: int, plan, folder: str):
        self.session = session
        self.direction = direction
        self.plan = plan
        self.folder = folder
        self.tmp: Optional[str] = None
        self.file = None
        self.writer = None
        self.data_opcode = 0  # opcode of the server message being continued

    @property
    def key(self) -> tuple:
        return (self.session.tcp_stream, self.session.start_frame)

    @property
    def label(self) -> str:
        return f"session {self.session.index} (tcp.stream {self.session.tcp_stream})"


def run(args) -> int:
    from ..deepgram.export import DIRECTIONS, default_direction, has_audio, plan_export

    path = args.capture
    keylog, report = analyze_args(args, interrupted="interrupted: no audio file written")
    if report is None:
        return EXIT_INPUT
    sessions = report.sessions
    if not sessions:
        others = report.connections.other.count if report.connections is not None else 0
        hint = (f" ({others} other TCP connection(s): ordinary traffic, or TLS that was not "
                "decrypted (pass --keylog))" if others else "")
        error(f"{path}: no WebSocket sessions in this capture{hint}")
        return EXIT_INPUT
    if args.session is not None:
        one = pick_session(path, sessions, args.session)
        if one is None:
            return EXIT_INPUT
        sessions = [one]

    failed = False
    chosen: list[tuple[Session, int]] = []
    for s in sessions:
        direction = (DIRECTIONS[args.direction] if args.direction
                     else default_direction(s.endpoint))
        if not has_audio(s, direction):
            why = _no_audio_reason(s, direction)
            if args.session is not None:
                error(f"{path}: session {s.index}: {why}")
                failed = True
            else:
                sys.stderr.write(f"dgcap: session {s.index}: skipped: {why}\n")
            continue
        chosen.append((s, direction))
    if not chosen:
        if not failed:
            which = f"{args.direction} audio" if args.direction else "audio"
            error(f"{path}: no session has {which} to write")
        return EXIT_INPUT

    namer = _Namer(path, args.output, several=len(chosen) > 1)
    problem = namer.problem()
    if problem:
        error(problem)
        return EXIT_INPUT
    targets: list[_Target] = []
    for s, direction in chosen:
        plan = plan_export(s, direction)
        if plan.container is False and plan.problem:
            error(f"{path}: session {s.index}: cannot write the {DIRECTION_NAMES[direction]} audio: "
                  f"{plan.problem}")
            failed = True
            continue
        targets.append(_Target(s, direction, plan, namer.folder(s)))
    if not targets:
        return EXIT_INPUT

    try:
        written = _write(path, keylog, targets, namer, tuple(args.server_names))
    except OSError as e:  # e.g. a folder we may not write in, a full disk
        error(f"{e.filename or path}: {e.strerror or e}")
        written = None
    finally:
        for t in targets:
            if t.file is not None and not t.file.closed:
                t.file.close()
            if t.tmp is not None and os.path.exists(t.tmp):
                os.unlink(t.tmp)
    if written is None:
        return EXIT_INPUT
    failed = failed or not all(written)
    return EXIT_INPUT if failed else EXIT_OK


def _no_audio_reason(s: Session, direction: int) -> str:
    hs = s.handshake
    if hs.status is not None and hs.status != 101:
        return f"no audio: the handshake failed (HTTP {hs.status})"
    if s.transport == "tls":
        return "no audio readable: the connection is TLS-encrypted and was not decrypted (pass --keylog)"
    if not (s.websocket or s.midstream):
        return "no audio: no WebSocket session was established"
    return f"no {DIRECTION_NAMES[direction]} audio (no non-empty {DIRECTION_NAMES[direction]} binary frames)"


def _write(path: str, keylog: Optional[str], targets: list[_Target], namer,
           server_names: tuple = ()) -> Optional[list[bool]]:
    """Second pass: stream the payloads, then close, name and rename every file."""
    from ..deepgram.export import AudioWriter
    from ..pipeline import Options

    by_key = {}
    for t in targets:
        fd, t.tmp = tempfile.mkstemp(prefix=".dgcap-audio-", suffix=".part", dir=t.folder)
        t.file = os.fdopen(fd, "w+b")
        t.writer = AudioWriter(t.file, t.plan, t.session.handshake.deflate)
        by_key[t.key] = t
    cache: list = [None, None]  # (session object, target) of the last lookup

    def lookup(session):
        if cache[0] is session:
            return cache[1]
        t = by_key.get((session.tcp_stream, session.start_frame))
        cache[0], cache[1] = session, t
        return t

    def binary_hook(session, frame, chunk):
        t = lookup(session)
        if t is not None and t.direction == CLIENT:
            t.writer.payload(frame, chunk)

    def frame_hook(session, direction, frame):
        if direction != SERVER:
            return
        t = lookup(session)
        if t is None or t.direction != SERVER:
            return
        op = frame.opcode
        if op in (OP_TEXT, OP_BINARY):
            t.data_opcode = op
        elif op != OP_CONTINUATION:
            return
        if t.data_opcode != OP_BINARY:
            return
        payload = frame.payload
        if payload or frame.length == 0:
            t.writer.payload(frame, payload)
        missing = frame.length - len(payload)
        if missing > 0:
            t.writer.payload(frame, missing)

    need_server = any(t.direction == SERVER for t in targets)
    need_client = any(t.direction == CLIENT for t in targets)
    options = Options(keylog=keylog, server_names=server_names,
                      binary_hook=binary_hook if need_client else None,
                      frame_hook=frame_hook if need_server else None)
    if need_server:
        options.keep_binary = SERVER_KEEP
    report = analyze_or_explain(path, options, "interrupted: no audio file written")
    if report is None:
        return None

    results = []
    for t in targets:
        r = t.writer.close()
        t.file.close()
        if r.error:
            error(f"{path}: {t.label}: cannot write the {DIRECTION_NAMES[t.direction]} audio: {r.error}")
            results.append(False)
            continue
        final = namer.path(t.session, r.extension)
        if os.path.exists(final) and not os.path.isfile(final):
            # A device or FIFO (/dev/null, a pipe): copy into it; replacing would destroy it.
            with open(t.tmp, "rb") as src, open(final, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.unlink(t.tmp)
        else:
            os.chmod(t.tmp, 0o666 & ~_umask())  # mkstemp makes it private; a normal file now
            os.replace(t.tmp, final)
        t.tmp = None
        sys.stdout.write(_line(final, r) + "\n")
        note = namer.extension_note(final, r.extension)
        if note:
            sys.stderr.write(f"dgcap: note: {note}\n")
        results.append(True)
    return results


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _line(final: str, r) -> str:
    seconds = f"{r.seconds:.3f} s" if r.seconds is not None else "duration unknown"
    extra = []
    if r.missing_bytes:
        extra.append(f"{r.missing_bytes} bytes missing from the capture filled with silence")
    if r.missing_compressed:
        extra.append(f"{r.missing_compressed} compressed bytes missing from the capture; what "
                     "they held is lost")
    extra.extend(r.notes)
    tail = f" ({'; '.join(extra)})" if extra else ""
    return f"{final}: {r.format}, {r.file_bytes} bytes, {seconds}{tail}"


def capture_stem(path: str) -> str:
    name = Path(path).name
    if name.endswith(".gz"):
        name = name[:-3]
    stem = Path(name).stem
    return stem or name


class _Namer:
    """Where each session's file goes (see the epilog)."""

    def __init__(self, capture: str, output: Optional[str], several: bool):
        self.stem = capture_stem(capture)
        self.output = output
        self.several = several
        self.mode = "default"
        if output is None:
            return
        if "{" in output:
            self.mode = "pattern"
        elif output.endswith(("/", os.sep)) or os.path.isdir(output):
            self.mode = "folder"
        else:
            self.mode = "file"

    def problem(self) -> Optional[str]:
        out = self.output
        if self.mode == "pattern":
            try:
                out.format(n=1, stem="x", ext="wav")
            except (KeyError, IndexError, ValueError) as e:
                return (f"-o {out}: bad pattern ({type(e).__name__}: {e}); the placeholders are "
                        "{n}, {stem} and {ext}")
            if self.several and "{n}" not in out:
                return f"-o {out}: with several sessions the pattern needs {{n}}"
            folder = os.path.dirname(out.format(n=1, stem=self.stem, ext="wav")) or "."
            if not os.path.isdir(folder):
                return f"-o {out}: folder {folder} does not exist"
        elif self.mode == "folder":
            try:
                os.makedirs(out, exist_ok=True)
            except OSError as e:
                return f"-o {out}: cannot create the folder: {e.strerror or e}"
        elif self.mode == "file":
            folder = os.path.dirname(out) or "."
            if not os.path.isdir(folder):
                return f"-o {out}: folder {folder} does not exist"
        return None

    def folder(self, session: Session) -> str:
        if self.mode == "default":
            return "."
        if self.mode == "folder":
            return self.output
        if self.mode == "pattern":
            return os.path.dirname(self.output.format(n=session.index, stem=self.stem, ext="wav")) or "."
        return os.path.dirname(self.output) or "."

    def path(self, session: Session, ext: str) -> str:
        default = f"{self.stem}.session{session.index}{ext}"
        if self.mode == "default":
            return default
        if self.mode == "folder":
            return os.path.join(self.output, default)
        if self.mode == "pattern":
            name = self.output.format(n=session.index, stem=self.stem, ext=ext.lstrip("."))
            if "{ext}" not in self.output and not Path(name).suffix:
                name += ext
            return name
        root, suffix = os.path.splitext(self.output)
        if self.several:
            return f"{root}.session{session.index}{suffix or ext}"
        return self.output if suffix else self.output + ext

    def extension_note(self, final: str, ext: str) -> Optional[str]:
        suffix = Path(final).suffix.lower()
        if self.mode in ("file", "pattern") and suffix and suffix != ext:
            return f"{final} holds {ext.lstrip('.').upper()} data; players may expect the {ext} extension"
        return None
