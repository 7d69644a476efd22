"""JSON Schemas (draft 2020-12) of dgcap's machine outputs (docs/json-contract.md).

`dgcap.report.schema.json`: `dgcap report --format json`.  `dgcap.records.schema.json`:
each line of `--format jsonl`; it refers to the report schema's definitions by its `$id`
(`urn:dgcap:schema:dgcap.report:1`), so a validator needs both (`schema_resources()`).
"""
from __future__ import annotations

import json
from pathlib import Path

SCHEMA_FILE = Path(__file__).with_name("dgcap.report.schema.json")
RECORDS_SCHEMA_FILE = Path(__file__).with_name("dgcap.records.schema.json")


def load_schema() -> dict:
    with open(SCHEMA_FILE, encoding="utf-8") as f:
        return json.load(f)


def load_records_schema() -> dict:
    with open(RECORDS_SCHEMA_FILE, encoding="utf-8") as f:
        return json.load(f)


def schema_resources() -> dict[str, dict]:
    """Every shipped schema by its `$id`, to register with a validator (jsonschema's referencing)."""
    schemas = (load_schema(), load_records_schema())
    return {s["$id"]: s for s in schemas}
