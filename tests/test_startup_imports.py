"""What `dgcap report` imports at start: a capture without TLS keys needs no cryptography
(analyzer/tls/crypto.py imports it on first use), and --format json no rich."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _modules_after(code: str) -> set:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=REPO))
    return set(out.stdout.split())


def test_report_of_a_capture_without_tls_imports_no_cryptography_nor_rich():
    capture = os.path.join(REPO, "captures", "dg_success.pcap")
    modules = _modules_after(
        "import contextlib, io\nfrom analyzer import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    cli.main(['report', '--format', 'json', {capture!r}])")
    assert "analyzer.pipeline" in modules and "analyzer.tls.connection" in modules
    assert not [m for m in modules if m.split(".")[0] in ("cryptography", "rich")]


def test_crypto_invalid_tag_is_cryptographys():
    from cryptography.exceptions import InvalidTag

    from analyzer.tls import crypto
    assert crypto.InvalidTag is InvalidTag
    try:
        crypto.NoSuchThing
    except AttributeError:
        pass
    else:
        raise AssertionError("crypto.NoSuchThing")
