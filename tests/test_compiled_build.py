"""The optional compiled build (README "Compiled build", setup.py, analyzer/build_kind.py).

The compiled hot modules must give byte-identical reports to the pure-Python ones on every
recorded capture: each run below is a child process, one with DGCAP_PURE=1 (the .py files,
even where extensions sit beside them), one without.  Where no compiled build is present
(a pure install, a checkout without `python setup.py build_ext --inplace`) the comparison is
skipped; CI builds it and runs this file both ways (.ci/run).
"""
from __future__ import annotations

import difflib
import glob
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys

import pytest

from analyzer import __version__
from analyzer.build_kind import COMPILED, HOT_MODULES, PURE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every recorded capture, each with the key log recorded beside it (TLS decryption is on the
# compiled path too).
CAPTURES = sorted(glob.glob(os.path.join(REPO, "captures", "*.pcap*"))
                  + glob.glob(os.path.join(REPO, "captures", "lab", "**", "*.pcap*"), recursive=True))

_REPORT_ALL = """
import json, os, sys
from analyzer.cli import main
out = {}
for path in sys.argv[2:]:
    keys = os.path.splitext(path)[0] + ".keys"
    target = os.path.join(sys.argv[1], "report.json")
    code = main(["report", "--format", "json", path, "-o", target]
                + (["--keylog", keys] if os.path.exists(keys) else []))
    with open(target, encoding="utf-8") as f:
        out[os.path.relpath(path)] = [code, f.read()]
print(json.dumps(out))
"""


def _env(pure: bool) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("DGCAP_PURE", None)
    if pure:
        env["DGCAP_PURE"] = "1"
    return env


def _python(code: str, *args: str, pure: bool, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=_env(pure),
                          capture_output=True, text=True, timeout=timeout)


def _compiled_files_present() -> bool:
    """Extension files beside every hot module's source (what `build_ext --inplace` leaves,
    or a compiled install)."""
    import analyzer
    root = os.path.dirname(os.path.dirname(analyzer.__file__))
    return all(any(os.path.exists(os.path.join(root, *name.split(".")) + suffix)
                   for suffix in importlib.machinery.EXTENSION_SUFFIXES) for name in HOT_MODULES)


COMPILED_PRESENT = _compiled_files_present()
needs_compiled = pytest.mark.skipif(not COMPILED_PRESENT, reason=(
    "no compiled build here (run `python setup.py build_ext --inplace`; CI does)"))

_WHICH_FILES = ("import importlib, json, sys\n"
                "print(json.dumps([importlib.import_module(n).__file__ for n in sys.argv[1:]]))")


def test_pure_env_runs_the_source_files():
    r = _python(_WHICH_FILES, *HOT_MODULES, pure=True)
    assert r.returncode == 0, r.stderr
    files = json.loads(r.stdout)
    assert [os.path.relpath(f, REPO) for f in files] == [
        os.path.join(*name.split(".")) + ".py" for name in HOT_MODULES]


def test_version_and_json_say_pure_python_under_dgcap_pure():
    r = _python("from analyzer.cli import main; main(['--version'])", pure=True)
    assert (r.returncode, r.stdout) == (0, f"dgcap {__version__} (pure Python)\n")
    r = _python("from analyzer.cli import main; main(['report', '--format', 'json', "
                "'captures/dg_success.pcap'])", pure=True)
    doc = json.loads(r.stdout)
    assert (doc["tool"], doc["tool_version"], doc["tool_build"]) == ("dgcap", __version__, PURE)


def test_version_says_which_build_runs():
    expected = COMPILED if COMPILED_PRESENT else PURE
    r = _python("from analyzer.cli import main; main(['--version'])", pure=False)
    assert (r.returncode, r.stdout) == (0, f"dgcap {__version__} ({expected})\n")


@needs_compiled
def test_compiled_modules_are_extensions():
    r = _python(_WHICH_FILES, *HOT_MODULES, pure=False)
    assert r.returncode == 0, r.stderr
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    assert [f for f in json.loads(r.stdout) if not f.endswith(suffixes)] == []


@needs_compiled
def test_compiled_reports_are_byte_identical_to_pure_python(tmp_path):
    assert len(CAPTURES) >= 50  # the recorded captures are all here
    reports = {}
    for pure in (True, False):
        out = tmp_path / ("pure" if pure else "compiled")
        out.mkdir()
        r = _python(_REPORT_ALL, str(out), *CAPTURES, pure=pure)
        assert r.returncode == 0, r.stderr[-3000:]
        reports[pure] = json.loads(r.stdout)
    assert sorted(reports[True]) == sorted(reports[False])
    builds = set()
    for path, (code, text) in reports[True].items():
        compiled_code, compiled_text = reports[False][path]
        pure_doc, compiled_doc = json.loads(text), json.loads(compiled_text)
        builds.add((pure_doc.pop("tool_build"), compiled_doc.pop("tool_build")))
        # Byte-identical apart from the one field naming the build.
        compiled_text = compiled_text.replace(COMPILED, PURE, 1)
        diff = "".join(list(difflib.unified_diff(text.splitlines(True), compiled_text.splitlines(True),
                                                 "pure", "compiled", n=1))[:40])
        assert (compiled_code, compiled_text) == (code, text), f"{path}\n{diff}"
        assert compiled_doc == pure_doc, path
    assert builds == {(PURE, COMPILED)}


def _copy_sources(dest) -> None:
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), dest / name)
    shutil.copytree(os.path.join(REPO, "analyzer"), dest / "analyzer",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))


def test_build_without_a_compiler_falls_back_to_pure_python(tmp_path):
    """No C compiler (CC=false): the build says why and succeeds with no extension; with
    DGCAP_REQUIRE_COMPILED=1 the same build fails."""
    pytest.importorskip("mypyc.build")
    _copy_sources(tmp_path)
    env = _env(pure=False)
    env.update(CC="false", PYTHONPATH="")
    env.pop("DGCAP_REQUIRE_COMPILED", None)
    build = [sys.executable, "setup.py", "-q", "build_ext", "--inplace"]
    r = subprocess.run(build, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "compiling failed" in r.stderr and "falling back to pure Python" in r.stderr
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    built = [os.path.relpath(os.path.join(d, f), tmp_path) for d, _, files in os.walk(tmp_path)
             for f in files if f.endswith(suffixes)]
    assert built == []
    env["DGCAP_REQUIRE_COMPILED"] = "1"
    r = subprocess.run(build, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode != 0
