"""The JSON Schema (draft 2020-12) of `dgcap report --format json` (docs/json-contract.md)."""
from __future__ import annotations

import json
from pathlib import Path

SCHEMA_FILE = Path(__file__).with_name("dgcap.report.schema.json")


def load_schema() -> dict:
    with open(SCHEMA_FILE, encoding="utf-8") as f:
        return json.load(f)
