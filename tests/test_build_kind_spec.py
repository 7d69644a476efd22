"""build_kind's find_spec without importing the parent packages (dgcap --version) finds the
same kind of module as importlib.util.find_spec, in both builds (DGCAP_PURE=1: the pure finder).
(Loaders only: a compiled module imported by its package gets an odd origin from mypyc.)"""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = """
import importlib.util, sys
from analyzer import build_kind
new = [type(s.loader).__name__ for s in map(build_kind._find_spec_unimported, build_kind.HOT_MODULES)]
assert not [m for m in sys.modules if m.startswith("analyzer.") and m != "analyzer.build_kind"], sorted(sys.modules)
old = [type(s.loader).__name__ for s in map(importlib.util.find_spec, build_kind.HOT_MODULES)]
assert new == old, (new, old)
assert build_kind._find_spec_unimported("analyzer.no_such_module") is None
assert build_kind._find_spec_unimported("analyzer.no_such_package.module") is None
assert build_kind._find_spec_unimported("analyzer.cli.not_a_package") is None
print("ok")
"""


@pytest.mark.parametrize("pure", ["", "1"])
def test_find_spec_unimported_equals_find_spec(pure):
    env = dict(os.environ, PYTHONPATH=REPO, DGCAP_PURE=pure)
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "ok", out.stderr
