"""Loading a run's partitions into a warehouse: DuckDB (embedded default), PostgreSQL, and load
scripts for Vertica. No Beam here; docs/warehouse.md describes the behaviour for users.

- `loader`: a load from start to end (lock, snapshot, one transaction per day, report);
- `snapshots`: the output side (partitions, private snapshots, checksums, file checks, batches);
- `connections`: the day-replace transaction every database shares, and warehouse URLs;
- `duckdb_warehouse`, `postgres_warehouse`: one module per database;
- `ddl`: table DDL per dialect, generated from the output schema; `vertica`: the vsql scripts;
- `load_command`: the `trackpipe load` command line and the example query of `make run`.
"""

from trackpipe.warehouse.connections import plural
from trackpipe.warehouse.ddl import describe_ddl
from trackpipe.warehouse.load_command import example_query, example_query_sql, format_table, main
from trackpipe.warehouse.loader import load_output
from trackpipe.warehouse.vertica import emit_vertica

__all__ = ["describe_ddl", "emit_vertica", "example_query", "example_query_sql", "format_table", "load_output", "main", "plural"]
