"""Which build of dgcap runs: the hot modules compiled with mypyc, or pure Python.

`pip install .` compiles the modules in HOT_MODULES with mypyc where a C compiler and the
Python headers exist (setup.py) and installs pure Python otherwise; the .py files are
installed either way.  DGCAP_PURE=1 in the environment makes a compiled install run its
pure-Python modules (install_pure_finder, called from analyzer/__init__.py), so the two
builds can be compared on one install (tests/test_compiled_build.py, bench/run.py --build).

This module is loaded by setup.py from its path (no analyzer import at build time): keep it
free of imports from the package.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

# The modules an audio frame passes through, from bench/profiles/pure-stream-2026-12-02.txt:
# together ~90 % of the CPU time of `dgcap report` on the pure-stream capture.
HOT_MODULES = (
    "analyzer.capture.reader",
    "analyzer.capture.decode",
    "analyzer.tcp.tracker",
    "analyzer.tcp.reassembly",
    "analyzer.websocket.frames",
    "analyzer.websocket.messages",
    "analyzer.session",
    "analyzer.deepgram.analyzer",
    "analyzer.deepgram.audio",
    "analyzer.redact",
    "analyzer.packet_loop",
)

COMPILED = "compiled (mypyc)"
PURE = "pure Python"

PURE_ENV = "DGCAP_PURE"  # "1": build (setup.py) and run (this module) pure Python
REQUIRE_COMPILED_ENV = "DGCAP_REQUIRE_COMPILED"  # "1": setup.py fails instead of falling back


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "no", "false")


def module_is_compiled(name: str) -> bool:
    """True when `name` was loaded from (or would load from) an extension module."""
    module = sys.modules.get(name)
    if module is not None:
        return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)
    spec = _find_spec_unimported(name)
    return spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)


def _find_spec_unimported(name: str):
    """importlib.util.find_spec(name), without importing the parent packages (their
    __init__ imports much of the analyzer, which `dgcap --version` does not need): the
    meta path finders are asked for each package in turn, as the import system would."""
    parts = name.split(".")
    path = None
    spec = None
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        module = sys.modules.get(prefix)
        if module is not None:
            spec = module.__spec__
            if depth < len(parts):
                path = getattr(module, "__path__", None)
        else:
            spec = None
            for finder in sys.meta_path:
                find_spec = getattr(finder, "find_spec", None)
                if find_spec is not None:
                    spec = find_spec(prefix, path)
                    if spec is not None:
                        break
            if spec is None:
                return None
            path = spec.submodule_search_locations
        if depth < len(parts) and path is None:
            return None  # not a package
    return spec


def build_kind() -> str:
    """"compiled (mypyc)", "pure Python", or, if only some hot modules are compiled (a broken
    or half-rebuilt install), "partly compiled (mypyc: K of N hot modules)"."""
    compiled = sum(module_is_compiled(name) for name in HOT_MODULES)
    if compiled == len(HOT_MODULES):
        return COMPILED
    if compiled == 0:
        return PURE
    return f"partly compiled (mypyc: {compiled} of {len(HOT_MODULES)} hot modules)"


class _PureSourceFinder(importlib.abc.MetaPathFinder):
    """Finds the hot modules' .py files even where a compiled extension sits beside them
    (the normal path finder prefers extensions)."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in HOT_MODULES:
            return None
        leaf = fullname.rpartition(".")[2] + ".py"
        for folder in path or ():
            source = os.path.join(folder, leaf)
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def install_pure_finder() -> None:
    if not any(isinstance(finder, _PureSourceFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PureSourceFinder())
