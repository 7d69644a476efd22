"""In-band Error / Warning / ConfigureFailure codes explained from the endpoint modules.

Used by the finding rules and the diagnosis, so both say the same thing about a code.
"""
from __future__ import annotations

from typing import Optional

from ..model import Session
from . import endpoints as ep
from .closeexplain import session_endpoint
from .endpoints.spec import Code


def explain_code(session: Session, kind: str, code: object) -> Optional[Code]:
    """The endpoint's entry for an "error", "warning" or "configure" code (None: unknown)."""
    known = ep.knowledge(session_endpoint(session))
    if known is None or not isinstance(code, str):
        return None
    table = {"error": known.errors, "warning": known.warnings,
             "configure": known.configure_failures}[kind]
    return table.get(code)


def code_clause(session: Session, entry: Optional[Code], code: object) -> str:
    """`: <meaning>; <next step>`, or a note that the code is not documented."""
    if entry is not None:
        return f": {entry.meaning}; {entry.step}"
    known = ep.knowledge(session_endpoint(session))
    if code is not None and known is not None:
        return f", a code Deepgram does not document for {known.path}"
    return ""
