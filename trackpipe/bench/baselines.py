"""The baseline `make bench` measures trackpipe against: DuckDB doing the same job in SQL.

Same input files, same job as `trackpipe run --no-package`: take each line's JSON from the
first `{` to the last `}` (after removing NULs), parse it, keep events with a name and a time,
remove exact copies and client-side re-sends within 5 s, split research / internal BI, write
Parquet partitioned by stream and arrival day (zstd), with the same columns.

It is an approximation of trackpipe's rules, written the way a data engineer would in SQL:
identity is an MD5 of the JSON with the delivery fields removed by json_merge_patch (key order
is not canonicalised), and a re-send is compared with the previous copy (a window LAG)
rather than with the kept one. It does at least the same work (one parse, two window sorts,
one partitioned write), so the comparison is fair in speed, not in exactness.
"""

from __future__ import annotations

import sys
import time

SQL = r"""
CREATE TEMP TABLE lines AS
SELECT filename AS source_file, replace(line, chr(0), '') AS l
FROM read_csv({files}, columns={{'line': 'VARCHAR'}}, header=false, delim=chr(31), quote='', escape='',
              auto_detect=false, filename=true, ignore_errors=true, null_padding=true, strict_mode=false,
              max_line_size=16777216);

CREATE TEMP TABLE ev AS
WITH j AS (
  SELECT source_file,
         try_cast(substr(l, strpos(l, '{{'), length(l) - strpos(l, '{{') - strpos(reverse(l), '}}') + 2) AS JSON) AS j
  FROM lines WHERE strpos(l, '{{') > 0
), x AS (
  -- one parse per line: every field in one json_extract call
  SELECT source_file, j,
         json_extract_string(j, ['$.name', '$.event_type', '$.event_source', '$.time', '$.timestamp',
                                 '$.context.received_at', '$.username', '$.context.user_id', '$.context.course_id',
                                 '$.context.org_id', '$.session', '$.ip', '$.agent', '$.host', '$.referer',
                                 '$.accept_language', '$.page']) AS v,
         json_extract(j, ['$.event', '$.context']) AS e
  FROM j WHERE j IS NOT NULL AND json_type(j) = 'OBJECT'
), f AS (
  SELECT source_file, j, v, e,
         coalesce(nullif(v[1], ''), nullif(v[2], '')) AS name,
         coalesce(nullif(v[3], ''), 'server') AS event_source,
         try_cast(coalesce(v[4], v[5]) AS TIMESTAMPTZ) AS time
  FROM x
)
SELECT source_file, name, v[2] AS event_type, event_source, time,
       coalesce(try_cast(v[6] AS TIMESTAMPTZ), time) AS received_at,
       trim(v[7]) AS username, try_cast(v[8] AS BIGINT) AS user_id, nullif(v[9], '') AS course_id,
       nullif(v[10], '') AS org_id, v[11] AS session, v[12] AS ip, v[13] AS agent, v[14] AS host, v[15] AS referer,
       v[16] AS accept_language, v[17] AS page,
       CASE WHEN json_type(e[1]) = 'VARCHAR' THEN e[1]->>'$' ELSE e[1]::VARCHAR END AS event,
       e[2]::VARCHAR AS context,
       md5(json_merge_patch(j, '{{"time": null, "timestamp": null, "context": {{"received_at": null}}}}')::VARCHAR) AS identity,
       md5(j::VARCHAR) AS event_id
FROM f WHERE name IS NOT NULL AND time IS NOT NULL;

CREATE TEMP TABLE kept AS
SELECT * EXCLUDE (rn, prev_time, identity) FROM (
  SELECT *,
         row_number() OVER (PARTITION BY identity, time, received_at ORDER BY source_file) AS rn,
         lag(time) OVER (PARTITION BY identity ORDER BY received_at, time) AS prev_time
  FROM ev)
WHERE rn = 1
  AND NOT (event_source IN ('browser', 'mobile') AND prev_time IS NOT NULL
           AND abs(epoch(time) - epoch(prev_time)) <= 5);

COPY (
  SELECT event_id, name, event_type, event_source, time, received_at, username, user_id, course_id, org_id,
         session, ip, agent, host, referer, accept_language, page, event, context, 1 AS copies, source_file,
         CASE WHEN starts_with(name, 'edx.bi.') THEN 'internal_bi' ELSE 'research' END AS stream,
         CAST(received_at AT TIME ZONE 'UTC' AS DATE) AS dt
  FROM kept
) TO '{out}' (FORMAT PARQUET, PARTITION_BY (stream, dt), COMPRESSION zstd, OVERWRITE_OR_IGNORE true);
"""


def run(files: list[str], out: str, threads: int = 2) -> dict:
    """Run the tolerant baseline; returns {'seconds': ..., 'rows': ...}."""
    return _duck(SQL, files, out, threads)


READ_JSON_SQL = r"""
CREATE TEMP TABLE ev AS
SELECT filename AS source_file, coalesce(nullif(name, ''), event_type) AS name, event_type,
       coalesce(nullif(event_source, ''), 'server') AS event_source,
       try_cast(coalesce(time, timestamp) AS TIMESTAMPTZ) AS time,
       coalesce(try_cast(context->>'$.received_at' AS TIMESTAMPTZ), try_cast(coalesce(time, timestamp) AS TIMESTAMPTZ)) AS received_at,
       trim(username) AS username, try_cast(context->>'$.user_id' AS BIGINT) AS user_id,
       nullif(context->>'$.course_id', '') AS course_id, nullif(context->>'$.org_id', '') AS org_id,
       session, ip, agent, host, referer, accept_language, page, event::VARCHAR AS event, context::VARCHAR AS context,
       md5(concat_ws('|', name, event_type, event_source, username, session, page, event::VARCHAR,
                     json_merge_patch(context, '{{"received_at": null}}')::VARCHAR)) AS identity,
       md5(concat_ws('|', name, event_type, event_source, username, session, page, event::VARCHAR, context::VARCHAR, time)) AS event_id
FROM read_json({files}, format='newline_delimited', ignore_errors=true, filename=true, maximum_object_size=16777216,
     columns={{name: 'VARCHAR', event_type: 'VARCHAR', event_source: 'VARCHAR', time: 'VARCHAR', timestamp: 'VARCHAR',
               username: 'VARCHAR', session: 'VARCHAR', ip: 'VARCHAR', agent: 'VARCHAR', host: 'VARCHAR', referer: 'VARCHAR',
               accept_language: 'VARCHAR', page: 'VARCHAR', event: 'JSON', context: 'JSON'}})
WHERE coalesce(nullif(name, ''), event_type) IS NOT NULL;

CREATE TEMP TABLE kept AS
SELECT * EXCLUDE (rn, prev_time, identity) FROM (
  SELECT *, row_number() OVER (PARTITION BY identity, time, received_at ORDER BY source_file) AS rn,
         lag(time) OVER (PARTITION BY identity ORDER BY received_at, time) AS prev_time FROM ev)
WHERE rn = 1 AND NOT (event_source IN ('browser', 'mobile') AND prev_time IS NOT NULL AND abs(epoch(time) - epoch(prev_time)) <= 5);

COPY (SELECT *, 1 AS copies, CASE WHEN starts_with(name, 'edx.bi.') THEN 'internal_bi' ELSE 'research' END AS stream,
             CAST(received_at AT TIME ZONE 'UTC' AS DATE) AS dt FROM kept)
TO '{out}' (FORMAT PARQUET, PARTITION_BY (stream, dt), COMPRESSION zstd, OVERWRITE_OR_IGNORE true);
"""


def run_read_json(files: list[str], out: str, threads: int = 2) -> dict:
    """The fast-engine reference: DuckDB's own newline-delimited JSON reader over the same
    files, then the same dedup and partitioned write. It parses only lines that are JSON from
    the first byte, so lines behind a logger prefix (and broken ones) are silently dropped:
    the job a user would reach for first, not the same job."""
    return _duck(READ_JSON_SQL, files, out, threads)


def _duck(sql: str, files: list[str], out: str, threads: int) -> dict:
    import duckdb

    start = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    con.execute(sql.format(files=listed, out=out.replace("'", "''")))
    rows = con.execute("SELECT count(*) FROM kept").fetchone()[0]
    con.close()
    return {"seconds": time.perf_counter() - start, "rows": rows}


if __name__ == "__main__":
    import glob
    import json

    result = run(sorted(glob.glob(sys.argv[1], recursive=True)), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    print(json.dumps(result))
