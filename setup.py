"""Optional compiled build: the hot modules (analyzer/build_kind.py HOT_MODULES) compiled with
mypyc where a C compiler and the Python headers exist, pure Python otherwise.

Everything else about the package is in pyproject.toml.  The decision, made when build_ext
runs (README, "Compiled build"):

* DGCAP_PURE=1                -> pure Python, nothing compiled;
* an editable install (pip install -e) -> pure Python, unless DGCAP_REQUIRE_COMPILED=1: an
  extension would shadow the .py files you edit;
* otherwise mypyc compiles them; if mypy/mypyc is missing, type-checking fails, mypyc
  warns, or the C compiler fails, the build says why on stderr and installs pure Python;
  with DGCAP_REQUIRE_COMPILED=1 it fails instead (CI).

mypyc warnings count as failures: one ("Unsupported default attribute value") was a silent
miscompilation that surfaced later as a SystemError elsewhere.
"""
from __future__ import annotations

import contextlib
import glob
import importlib.machinery
import importlib.util
import io
import os
import re
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def _build_kind():
    spec = importlib.util.spec_from_file_location(
        "_dgcap_build_kind", os.path.join(HERE, "analyzer", "build_kind.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


KIND = _build_kind()
# Type-check the compiled modules strictly enough for mypyc; the rest of the package is read
# for types but not required to be clean.  Three error codes are off: each is an operation on
# an Optional value that the program knows is set at that point (`self.builder.x`,
# `self._parsers[d]`, `ts - self.first_time`), which mypyc compiles as the generic Python
# operation, with the same result and the same exception if the value were None.
GENERIC_OPTIONAL_CODES = ("union-attr", "index", "operator")
MYPY_OPTIONS = ["--follow-imports=silent", "--ignore-missing-imports",
                *(f"--disable-error-code={code}" for code in GENERIC_OPTIONAL_CODES),
                # (a note that untyped functions' bodies are not checked: mypyc stops on notes)
                "--disable-error-code=annotation-unchecked",
                "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}"]


class CompileFailed(Exception):
    pass


def _say(message: str) -> None:
    sys.stderr.write(f"dgcap build: {message}\n")
    sys.stderr.flush()


def mypyc_extensions() -> list:
    """mypycify the hot modules; CompileFailed on any error or warning."""
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        raise CompileFailed(f"mypyc is not importable ({exc})") from None
    paths = [os.path.join("analyzer", *name.split(".")[1:]) + ".py" for name in KIND.HOT_MODULES]
    messages = io.StringIO()
    try:
        with contextlib.redirect_stdout(messages):  # mypyc prints its errors and warnings
            # The shared runtime module inside the package (analyzer/_hot__mypyc.*.so), not at
            # the top level, where an editable install would not put it on sys.path.
            extensions = mypycify(MYPY_OPTIONS + paths, opt_level="3", group_name="analyzer._hot")
    except (Exception, SystemExit):  # mypyc exits on type errors, and may crash on odd code
        raise CompileFailed("mypyc failed:\n" + messages.getvalue()) from None
    text = messages.getvalue()
    if re.search(r": (error|warning):", text):
        raise CompileFailed("mypyc reported problems (warnings count):\n" + text)
    if text.strip():
        _say(text.strip())
    return extensions


class OptionalMypycBuildExt(build_ext):
    """build_ext that compiles the hot modules when it can and falls back to pure Python."""

    def finalize_options(self):
        self.distribution.ext_modules = self._choose_extensions()
        super().finalize_options()

    def _choose_extensions(self) -> list:
        require = KIND.env_flag(KIND.REQUIRE_COMPILED_ENV)
        if KIND.env_flag(KIND.PURE_ENV):
            _say(f"{KIND.PURE_ENV} is set: pure Python, nothing compiled")
            return []
        if getattr(self, "editable_mode", False) and not require:
            _say("editable install: pure Python (set DGCAP_REQUIRE_COMPILED=1 to compile)")
            return []
        try:
            return mypyc_extensions()
        except CompileFailed as exc:
            if require:
                raise SystemExit(f"dgcap build: {exc}\n{KIND.REQUIRE_COMPILED_ENV} is set: failing")
            _say(f"{exc}\nfalling back to pure Python")
            return []

    def run(self):
        if not self.extensions:
            self._remove_stale_extensions()
            return
        try:
            super().run()
        except Exception as exc:  # no compiler, no Python headers, a compiler error
            if KIND.env_flag(KIND.REQUIRE_COMPILED_ENV):
                raise
            self._remove_stale_extensions()
            self.extensions = []
            _say(f"compiling failed ({exc}); falling back to pure Python")

    def _remove_stale_extensions(self):
        """A pure-Python build leaves no extension of the hot modules where it builds (the
        source tree with --inplace, else build/lib): one from an earlier build would shadow
        the .py file, and a module's extension without mypyc's shared library fails to import."""
        in_tree = self.inplace or getattr(self, "editable_mode", False)
        root = os.path.abspath("." if in_tree else self.build_lib)
        stale = glob.glob(os.path.join(root, "*__mypyc.*")) + glob.glob(
            os.path.join(root, "analyzer", "*__mypyc.*")) + [
            os.path.join(root, *name.split(".")) + suffix for name in KIND.HOT_MODULES
            for suffix in importlib.machinery.EXTENSION_SUFFIXES]
        for path in stale:
            if os.path.exists(path):
                os.remove(path)
                if in_tree:
                    _say(f"removed {os.path.relpath(path)} (an earlier compiled build)")

    def get_outputs(self):
        return super().get_outputs() if self.extensions else []


# A placeholder so setuptools runs build_ext (and tags the wheel per platform); the real list
# is chosen in OptionalMypycBuildExt.finalize_options.
setup(ext_modules=[Extension("analyzer._placeholder", sources=[])],
      cmdclass={"build_ext": OptionalMypycBuildExt})
