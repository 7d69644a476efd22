"""Fleet scale: line records (JSONL), columnar tables (Parquet) and Dask runs.

`records` turns the JSON contract's objects (CaptureReport/Session/Finding `to_json()`)
into self-describing records (docs/json-contract.md, "Line records"); `jsonl` and
`parquet` write them; `cluster` maps captures over a Dask cluster.  Everything here
reads the documented JSON shape only, never the analysis internals.
"""
