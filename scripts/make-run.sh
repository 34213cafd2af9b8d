#!/usr/bin/env bash
# `make run`: the main job on the sample logs in samples/ (DirectRunner), loaded into the
# embedded DuckDB warehouse, then the HTML report. Safe to rerun: each run replaces its days.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out}"
bin=.venv/bin
db="$(realpath -m "$out")/warehouse.duckdb"   # duckdb:// + an absolute path (duckdb:///abs/...)

"$bin/trackpipe" run \
    --input 'samples/logs/**/tracking.log-*.gz' \
    --output "$out" \
    --load "duckdb://$db"

echo
echo "Example query on the DuckDB warehouse ($db):"
"$bin/python" - "$db" <<'PY'
import sys
from trackpipe.config import Config
from trackpipe.warehouse import example_query
print(example_query(f"duckdb://{sys.argv[1]}", Config()))
PY

echo
report=$("$bin/trackpipe" report "$out")
echo "Data-quality report: $report"
echo "Query it yourself:   $bin/python -c \"import duckdb; print(duckdb.connect('$db').sql('SELECT event_source, count(*) FROM research_events GROUP BY 1'))\""
