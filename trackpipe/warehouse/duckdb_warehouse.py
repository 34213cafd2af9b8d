"""DuckDB, the embedded default warehouse: Parquet is read by DuckDB itself, Avro through
Arrow record batches.
"""

from __future__ import annotations

import contextlib
import os

import pyarrow as pa

from trackpipe.config import Config
from trackpipe.errors import TrackpipeError, first_line
from trackpipe.events.schema import OUTPUT_COLUMNS, OUTPUT_SCHEMA
from trackpipe.warehouse.connections import Warehouse
from trackpipe.warehouse.ddl import literal
from trackpipe.warehouse.snapshots import avro_batches


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"

    def __init__(self, url: str, config: Config, path: str, read_only: bool = False):
        super().__init__(url, config)
        import duckdb

        if path != ":memory:" and not read_only:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        try:
            self.con = duckdb.connect(path, read_only=read_only)
        except duckdb.Error as exc:
            raise TrackpipeError(f"cannot open the DuckDB database {path}: {first_line(exc)}") from None

    def execute(self, sql: str, params: tuple | list = ()):
        return self.con.execute(sql, list(params)) if params else self.con.execute(sql)

    @contextlib.contextmanager
    def transaction(self):
        self.con.begin()
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # keep the original error, whatever state DuckDB is in
                self.con.rollback()
            raise
        self.con.commit()

    def insert_file(self, table: str, dt: str, path: str) -> int:
        columns = ", ".join(OUTPUT_COLUMNS)
        if path.endswith(".parquet"):
            source = f"read_parquet({literal(path)})"
            return self._count(self.execute(f"INSERT INTO {table} ({columns}, dt) SELECT {columns}, CAST(? AS DATE) FROM {source}", (dt,)))

        reader = pa.RecordBatchReader.from_batches(OUTPUT_SCHEMA, avro_batches(path))
        self.con.register("trackpipe_avro_source", reader)
        try:
            sql = f"INSERT INTO {table} ({columns}, dt) SELECT {columns}, CAST(? AS DATE) FROM trackpipe_avro_source"
            return self._count(self.execute(sql, (dt,)))
        finally:
            self.con.unregister("trackpipe_avro_source")

    @staticmethod
    def _count(cursor) -> int:
        row = cursor.fetchone()
        return int(row[0]) if row else 0

    def delete_day(self, table: str, dt: str) -> int:
        return self._count(self.execute(f"DELETE FROM {table} WHERE dt = CAST(? AS DATE)", (dt,)))

    def close(self) -> None:
        self.con.close()
