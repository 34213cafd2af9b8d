"""`trackpipe report`: the numbers it gathers, the page it writes, and that page in a real browser.

- Unit tests build small outputs by hand (manifest, Parquet/Avro partitions, duplicates audit,
  rejects) and check trackpipe.report.data and the rendered HTML, without a browser.
- CLI tests run `trackpipe report` as a user would.
- Browser tests (slow) run real `trackpipe run`s, open their report in headless Chromium through
  Playwright and read the numbers back from the page (the charts carry them as data-* attributes
  and as text), compare them with the manifests, check the page loads with no console error and
  no network request, and save screenshots under test-artifacts/.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import ROOT, run_cli
from trackpipe import storage
from trackpipe.errors import TrackpipeError
from trackpipe.events.schema import DUPLICATES_SCHEMA, OUTPUT_SCHEMA
from trackpipe.report import data as rd
from trackpipe.report import render as report

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # runs as root here
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# --- a small output written by hand ------------------------------------------------------------

DAYS = ["2026-11-02", "2026-11-03"]
# (stream, day) -> [(hour, event_source, rows)]
ROWS = {
    ("research", "2026-11-02"): [(0, "server", 5), (0, "browser", 3), (13, "server", 7), (23, "mobile", 2)],
    ("research", "2026-11-03"): [(1, "server", 4), (1, "task", 1), (12, "browser", 6)],
    ("internal_bi", "2026-11-02"): [(9, "browser", 2)],
}
DUPS = [("exact", "server", "problem_check", 4), ("client_resend", "browser", "page_close", 3), ("exact", "browser", "page_close", 1)]
REJECT_LINES = [
    ("not_json", '{"name": "seq_next", "username": "alice77", "ip": "203.0.113.9", "session": "abcd1234"'),
    ("not_json", '{"event_type": "x", "context": {"user_id": 42}, "email": "alice@example.org", "page": "http://10.0.0.8/"'),
    ("not_json", "garbage " * 60),
    ("not_json", "fourth line, not shown"),
    ("bad_time", '{"name": "<script>alert(1)</script>", "time": "yesterday", "username": "bob"}'),
]
PACKAGES = [("mitx", "2026-11-02", 10, 2048), ("mitx", "2026-11-03", 8, 1024), ("harvardx", "2026-11-02", 3, 700)]


def _ts(day: str, hour: int, minute: int = 0):
    import datetime as dt

    return dt.datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}:00+00:00")


def write_output(
    out: Path, rows=None, dups=None, rejects=None, packages=None, fmt: str = "parquet", days=None, manifest_overrides=None
) -> dict:
    """A published-looking output: partitions, duplicates audit, rejects and a manifest that
    matches them (reconciliation balanced). Returns the manifest."""
    rows = ROWS if rows is None else rows
    dups = DUPS if dups is None else dups
    rejects = REJECT_LINES if rejects is None else rejects
    packages = PACKAGES if packages is None else packages
    days = DAYS if days is None else days
    partitions, rows_written = [], {}
    for (stream, day), groups in sorted(rows.items()):
        records = []
        for hour, source, n in groups:
            records += [
                {
                    "event_id": f"{stream}-{day}-{hour}-{source}-{i}",
                    "name": "x",
                    "event_source": source,
                    "time": _ts(day, hour, i % 60),
                    "received_at": _ts(day, hour, i % 60),
                    "copies": 1,
                }
                for i in range(n)
            ]
        folder = out / "warehouse" / stream / f"dt={day}"
        folder.mkdir(parents=True)
        table = pa.Table.from_pylist(records, schema=OUTPUT_SCHEMA)
        name = f"part-0000.{fmt}"
        if fmt == "avro":
            from trackpipe.storage.formats import TableWriter

            writer = TableWriter(str(folder / name), OUTPUT_SCHEMA, "avro")
            writer.write(table)
            writer.close()
        else:
            pq.write_table(table, folder / name)
        partitions.append({"stream": stream, "dt": day, "rows": len(records), "path": f"warehouse/{stream}/dt={day}", "files": [name]})
        rows_written.setdefault(stream, {})[day] = len(records)
    audit = [
        {"event_id": "e", "kind": kind, "event_source": src, "name": name, "time": _ts(DAYS[0], 1), "received_at": _ts(DAYS[0], 1)}
        for kind, src, name, n in dups
        for _ in range(n)
    ]
    (out / "duplicates" / f"dt={days[0]}").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(audit, schema=DUPLICATES_SCHEMA), out / "duplicates" / f"dt={days[0]}" / "part-0000.parquet")
    (out / "rejects").mkdir()
    lines = [
        {"reason": r, "detail": "d", "source": "/logs/tracking.log-1.gz", "line_number": i + 1, "line": text, "line_truncated": False}
        for i, (r, text) in enumerate(rejects)
    ]
    (out / "rejects" / "part-0000.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(x) + "\n" for x in lines).encode()))
    files = [
        {
            "path": f"research_package/{org}/edx/events/2026/{org}-edx-events-{day}.log.gz",
            "org": org,
            "date": day,
            "events": ev,
            "bytes": size,
            "sha256": "0" * 64,
            "encrypted": False,
        }
        for org, day, ev, size in packages
    ]
    by_kind, by_source, by_name = {}, {}, {}
    for kind, src, name, n in dups:
        by_kind[kind] = by_kind.get(kind, 0) + n
        by_source[src] = by_source.get(src, 0) + n
        by_name[name] = by_name.get(name, 0) + n
    rejected = {}
    for r, _ in rejects:
        rejected[r] = rejected.get(r, 0) + 1
    total_rows = sum(p["rows"] for p in partitions)
    blank = 2
    lines_read = total_rows + sum(by_kind.values()) + len(rejects) + blank
    manifest = {
        "manifest_version": 1,
        "trackpipe_version": "0.1.0",
        "run_id": f"20261103T010000Z-{out.name[:6]}",
        "started_at": "2026-11-03T01:00:00+00:00",
        "published_at": "2026-11-03T01:00:09+00:00",
        "options": {"format": fmt},
        "config": {"format": fmt},
        "dates": days,
        "inputs": [{"path": "/logs/tracking.log-1.gz", "lines": lines_read, "bytes": 12345, "chunks": 1}],
        "lines_read": lines_read,
        "blank_lines": blank,
        "events_parsed": total_rows + sum(by_kind.values()),
        "rejected": dict(sorted(rejected.items())),
        "rejected_total": len(rejects),
        "duplicates_removed": {
            "total": sum(by_kind.values()),
            "by_kind": dict(sorted(by_kind.items())),
            "by_source": dict(sorted(by_source.items())),
            "by_source_and_kind": {},
            "by_dt": {days[0]: sum(by_kind.values())},
            "top_names": [[k, v] for k, v in sorted(by_name.items(), key=lambda kv: (-kv[1], kv[0]))],
        },
        "rows_written": rows_written,
        "rows_written_total": total_rows,
        "outside_selected_dates": 0,
        "input_errors": [],
        "partitions": partitions,
        "research_package": {"files": files, "left_out": {"no_org": 1}},
        "reconciliation": {
            "lines_read": lines_read,
            "blank_lines": blank,
            "rejected": len(rejects),
            "duplicates_removed": sum(by_kind.values()),
            "rows_written": total_rows,
            "outside_selected_dates": 0,
            "balanced": True,
        },
    }
    manifest.update(manifest_overrides or {})
    (out / "_manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


@pytest.fixture
def small_output(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    write_output(out)
    return out


# --- masking -----------------------------------------------------------------------------------


def test_mask_personal_fields_at_every_escaping_level():
    line = (
        '{"name": "problem_check", "username": "alice77", "ip": "203.0.113.9", "session": "s3cr3t", '
        '"context": {"user_id": 123456, "course_id": "course-v1:MITx+6.00x+2026", "module": {"display_name": "Quiz 1"}}, '
        '"event": "{\\"user_id\\": \\"987\\", \\"email\\": \\"bob@example.org\\", \\"answer\\": \\"42\\"}", '
        '"time": "2026-11-02T15:32:18.471890+00:00", "agent": "Chrome/142.0.0.0"}'
    )
    masked = rd.mask_personal(line)
    for secret in ("alice77", "203.0.113.9", "s3cr3t", "123456", "987", "bob@example.org"):
        assert secret not in masked
    # the event name, course, display name and times stay readable
    for kept in (
        '"name": "problem_check"',
        "course-v1:MITx+6.00x+2026",
        '"display_name": "Quiz 1"',
        "15:32:18.471890",
        '\\"answer\\": \\"42\\"',
    ):
        assert kept in masked
    assert '"username": "***"' in masked and '"user_id": ***' in masked and '\\"user_id\\": \\"***\\"' in masked


def test_mask_free_text_addresses_and_cut_off_values():
    text = 'contact carol.d+x@mail.example.com from 198.51.100.23 or 2001:db8:85a3::8a2e:370:7334 at 10:11:12; {"username": "dav'
    masked = rd.mask_personal(text)
    assert "carol" not in masked and "198.51.100.23" not in masked and "2001:db8" not in masked and "dav" not in masked.split("username")[1]
    assert "10:11:12" in masked  # a time is not an IPv6 address


def test_example_text_masks_before_cutting():
    line = '{"x": "' + "a" * 190 + '", "username": "eve_the_learner"}'
    text, cut = rd.example_text(line)
    assert cut and len(text) == rd.EXAMPLE_CHARS
    assert "eve" not in text  # cut after masking: no half-visible username
    assert rd.example_text("short") == ("short", False)


# --- gathering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
def test_gather_reads_partitions_audit_and_rejects(tmp_path, fmt):
    out = tmp_path / "out"
    m = write_output(out, fmt=fmt)
    run = rd.gather(str(out))
    assert run.notes == []
    wh = run.warehouse
    assert wh.total == m["rows_written_total"] == 30
    assert wh.hourly["2026-11-02 00:00"] == {"server": 5, "browser": 3}
    assert wh.hourly["2026-11-02 09:00"] == {"browser": 2}  # internal_bi rows count too
    assert wh.hourly["2026-11-03 12:00"] == {"browser": 6}
    assert wh.sources == ["server", "browser", "mobile", "task"]
    assert wh.rows_by_partition == {(p["stream"], p["dt"]): p["rows"] for p in m["partitions"]}
    assert run.duplicates.by_kind == {"exact": 5, "client_resend": 3}
    assert run.duplicates.by_name == {"problem_check": 4, "page_close": 4}
    assert run.duplicates.by_source_kind == {"browser": {"client_resend": 3, "exact": 1}, "server": {"exact": 4}}
    assert run.rejects.by_reason == {"not_json": 4, "bad_time": 1}
    examples = run.rejects.examples["not_json"]
    assert len(examples) == rd.EXAMPLES_PER_REASON
    assert [e["line_number"] for e in examples] == [1, 2, 3]
    assert examples[2]["cut"] and len(examples[2]["line"]) == rd.EXAMPLE_CHARS
    assert "alice77" not in examples[0]["line"] and "203.0.113.9" not in examples[0]["line"]
    assert run.rows == {
        ("internal_bi", "2026-11-02"): 2,
        ("internal_bi", "2026-11-03"): 0,
        ("research", "2026-11-02"): 17,
        ("research", "2026-11-03"): 11,
    }
    assert [(o.org, o.bytes, o.events, len(o.files)) for o in run.packages] == [("mitx", 3072, 18, 2), ("harvardx", 700, 3, 1)]


def test_gather_notes_where_files_and_manifest_disagree(tmp_path):
    out = tmp_path / "out"
    m = write_output(out)
    m["partitions"][0]["rows"] += 5
    m["partitions"][0]["files"].append("part-gone.parquet")
    m["duplicates_removed"]["total"] = 99
    m["rejected_total"] = 1
    (out / "_manifest.json").write_text(json.dumps(m))
    notes = rd.gather(str(out)).notes
    assert any("missing" in n and "part-gone.parquet" in n for n in notes)
    assert any("the manifest says" in n and m["partitions"][0]["path"] in n for n in notes)
    assert any("duplicates audit holds 8 rows" in n for n in notes)
    assert any("rejects files hold 5 lines" in n for n in notes)


def test_damaged_files_become_warnings_not_a_crash(small_output):
    (small_output / "warehouse" / "research" / "dt=2026-11-03" / "part-0000.parquet").write_bytes(b"PAR1 not really")
    (small_output / "rejects" / "part-0000.jsonl.gz").write_bytes(gzip.compress(b"{}")[:12])
    run = rd.gather(str(small_output))
    assert any("dt=2026-11-03" in n and "unreadable" in n for n in run.notes)
    assert any("part-0000.jsonl.gz: unreadable" in n for n in run.notes)
    assert any("the files hold 0 rows, the manifest says 11" in n for n in run.notes)
    page = report.render(run)
    assert 'id="notes"' in page and "unreadable" in page


def test_an_empty_run_renders(tmp_path):
    out = tmp_path / "empty"
    write_output(out, rows={}, dups=[], rejects=[], packages=[], manifest_overrides={"research_package": None})
    run = rd.gather(str(out))
    assert run.warehouse.total == 0 and run.duplicates.total == 0 and run.rejects.total == 0 and run.packages is None
    page = report.render(run, run)
    assert "This run wrote no research packages" in page and "No rejected lines." in page
    assert 'data-big-count="0"' in page


def test_gather_through_the_object_store_code_path(small_output, monkeypatch):
    """With every path taken as remote, files are listed and read through Beam's FileSystems and
    parsed from bytes (as for s3:// outputs); the numbers are the same."""
    local = rd.gather(str(small_output))
    monkeypatch.setattr(storage, "is_remote", lambda path: True)
    remote = rd.gather(str(small_output))
    assert remote.warehouse.hourly == local.warehouse.hourly
    assert remote.duplicates.by_name == local.duplicates.by_name
    assert remote.rejects.by_reason == local.rejects.by_reason


def test_read_manifest_errors(tmp_path):
    with pytest.raises(TrackpipeError, match="no run manifest"):
        rd.read_manifest(str(tmp_path))
    (tmp_path / "_manifest.json").write_text("{not json")
    with pytest.raises(TrackpipeError, match="not valid JSON"):
        rd.read_manifest(str(tmp_path))
    (tmp_path / "_manifest.json").write_text("[]")
    with pytest.raises(TrackpipeError, match="not a trackpipe run manifest"):
        rd.read_manifest(str(tmp_path))


def test_align_dates_by_date_or_by_position():
    assert rd.align_dates(["2026-11-02", "2026-11-03"], ["2026-11-03", "2026-11-04"]) == (
        {"2026-11-02": None, "2026-11-03": "2026-11-03"},
        "date",
    )
    assert rd.align_dates(["2026-11-03"], ["2026-11-02"]) == ({"2026-11-03": "2026-11-02"}, "position")
    assert rd.align_dates(["2026-11-03", "2026-11-04"], ["2026-11-01"]) == ({"2026-11-03": "2026-11-01", "2026-11-04": None}, "position")
    assert rd.other_hour("2026-11-03 07:00", {"2026-11-03": "2026-11-02"}) == "2026-11-02 07:00"
    assert rd.other_hour("2026-11-03 07:00", {"2026-11-03": None}) is None


def test_change_flags_big_changes_only():
    assert rd.change(130, 100).big and rd.change(70, 100).big
    assert not rd.change(119, 100).big
    assert not rd.change(5, 3).big  # over 20% but only 2 rows: noise
    assert rd.change(50, 0).big and rd.change(50, 0).pct is None
    assert not rd.change(0, 0).big
    assert rd.change(10, None) == rd.Change(10, None, None, None, False)
    assert report.fmt_change(rd.change(130, 100)) == "+30 (+30.0%)"
    assert report.fmt_change(rd.change(70, 100)) == "\u221230 (\u221230.0%)"
    assert report.fmt_change(rd.change(50, 0)) == "+50 (new)"


# --- the page (no browser) ---------------------------------------------------------------------


def test_page_escapes_data_and_is_self_contained(small_output):
    page = report.render(rd.gather(str(small_output)))
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page  # no script at all
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched
    assert "alice77" not in page and "203.0.113.9" not in page and "alice@example.org" not in page


def test_compare_highlights_a_broken_day(tmp_path):
    good, broken = tmp_path / "good", tmp_path / "broken"
    rows = dict(ROWS)
    rows[("research", "2026-11-03")] = [(1, "server", 40), (12, "browser", 30)]
    write_output(good, rows=rows)
    rows[("research", "2026-11-03")] = [(1, "server", 40)]  # the browser events of the day went missing
    write_output(broken, rows=rows)
    page = report.render(rd.gather(str(broken)), rd.gather(str(good)))
    row = re.search(r'<g class="row big" data-key="research/2026-11-03" data-value="40" data-prev="70"[^>]*>', page)
    assert row, "the broken day's bar is not highlighted"
    assert 'data-key="research/2026-11-02" data-value="17" data-prev="17" data-change="0" data-change-pct="0.0000" data-big="false"' in page
    assert re.search(r'<g class="hour big" data-hour="2026-11-03 12:00" data-value="0" data-prev="30"', page)
    assert 'id="changes" data-big-count=' in page and "\u221230 (\u221242.9%)" in page


def test_write_report_default_and_explicit_path(small_output, tmp_path):
    assert report.write_report(str(small_output)) == str(small_output / "report.html")
    assert (small_output / "report.html").read_text().startswith("<!DOCTYPE html>")
    target = tmp_path / "elsewhere" / "r.html"
    assert report.write_report(str(small_output), str(target), compare=str(small_output)) == str(target)
    assert "Compared with" in target.read_text()


# --- the command -------------------------------------------------------------------------------


def test_cli_report_prints_the_path(small_output):
    result = run_cli("report", str(small_output))
    assert result.returncode == 0
    assert result.stdout.strip() == str(small_output / "report.html")
    assert (small_output / "report.html").stat().st_size > 10_000


def test_cli_report_compare_and_html(small_output, tmp_path):
    target = tmp_path / "cmp.html"
    result = run_cli("report", str(small_output), "--compare", str(small_output), "--html", str(target))
    assert result.stdout.strip() == str(target) and target.exists()


def test_cli_missing_manifest_is_one_line_error(tmp_path):
    result = run_cli("report", str(tmp_path / "nothing"), check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trackpipe: error: no run manifest at ")


def test_cli_bad_compare_output_is_one_line_error(small_output, tmp_path):
    result = run_cli("report", str(small_output), "--compare", str(tmp_path), check=False)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "no run manifest" in result.stderr


# --- in a browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (Debian's) driven by Playwright, one fresh profile per module."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found ({CHROMIUM}): install it with `bash scripts/ensure-system-deps.sh` (as root) or `make system-deps`"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the Python package playwright is missing: `make install` (requirements-dev.txt); never `playwright install`, Debian's chromium is used"
        )
    profile = tempfile.mkdtemp(prefix="trackpipe-chromium-")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 900}
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


class Page:
    """A report opened in the browser, with what it logged and requested."""

    def __init__(self, context, html_path: str):
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = context.new_page()
        self.page.set_default_timeout(30_000)
        self.page.on(
            "console", lambda msg: self.errors.append(f"console {msg.type}: {msg.text}") if msg.type in ("error", "warning") else None
        )
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.on("requestfailed", lambda req: self.errors.append(f"request failed: {req.url}"))
        self.page.on("request", lambda req: self.requests.append(req.url))
        self.page.goto(Path(html_path).resolve().as_uri(), wait_until="load")

    def rows(self, chart: str) -> dict[str, dict]:
        """data-* of each row of a chart, by data-key."""
        return self.page.eval_on_selector_all(
            f'[data-chart="{chart}"] [data-key]', "els => Object.fromEntries(els.map(e => [e.dataset.key, Object.assign({}, e.dataset)]))"
        )

    def ints(self, chart: str, attr: str = "value") -> dict[str, int]:
        return {k: int(v[attr]) for k, v in self.rows(chart).items() if attr in v}

    def screenshot(self, path: Path, full_page: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real runs of the same two days (different seeds), as `trackpipe run` writes them."""
    base = tmp_path_factory.mktemp("report-runs")
    outs = []
    for seed in (3, 4):
        gen, out = base / f"gen{seed}", base / f"out{seed}"
        run_cli("generate", "--events", "12000", "--seed", str(seed), "--out", str(gen), "--days", "2", "--files", "3")
        run_cli("run", "--input", str(gen / "logs" / "**" / "*.gz"), "--output", str(out))
        outs.append(out)
    return outs


def _manifest(out: Path) -> dict:
    return json.loads((out / "_manifest.json").read_text())


@pytest.mark.slow
def test_report_in_browser_shows_the_manifest_numbers(browser, runs):
    out, prev = runs
    m, pm = _manifest(out), _manifest(prev)
    html_path = report.write_report(str(out), compare=str(prev))
    view = Page(browser, html_path)
    page = view.page
    assert view.errors == []
    assert all(url.startswith(("file:", "data:", "about:")) for url in view.requests), view.requests
    assert page.title() == f"trackpipe report \u00b7 {m['run_id']}"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280, "the page is wider than a 1280px window"

    # header: run id, key numbers (with the other run's beside them)
    assert m["run_id"] in page.inner_text('[data-fact="run"]')
    assert pm["run_id"] in page.inner_text('[data-fact="compared with"]')
    numbers = view.ints("numbers")
    assert numbers["lines_read"] == m["lines_read"] and numbers["rows_written_total"] == m["rows_written_total"]
    assert numbers["duplicates_removed"] == m["duplicates_removed"]["total"] and numbers["rejected_total"] == m["rejected_total"]
    assert numbers["research_package_files"] == len(m["research_package"]["files"])
    assert view.ints("numbers", "prev")["lines_read"] == pm["lines_read"]
    assert page.inner_text('[data-key="lines_read"] .n-value') == f"{m['lines_read']:,}"

    # 6. reconciliation
    # every way out of the reconciliation, but the optional ones (retired, expired, forgotten) that neither run has
    shown = [
        k
        for k in m["reconciliation"]
        if k != "balanced" and (k not in rd.OPTIONAL_PARTS or m["reconciliation"][k] or pm["reconciliation"].get(k))
    ]
    assert view.ints("reconciliation") == {k: m["reconciliation"][k] for k in shown}
    assert view.ints("reconciliation", "prev") == {k: pm["reconciliation"].get(k, 0) for k in shown}
    assert page.get_attribute(".equation", "data-balanced") == "true"

    # 1. rows per hour and event source: the hours add up to the rows written, day by day
    hours = page.eval_on_selector_all(
        '[data-chart="hourly"] g.hour', "els => els.map(e => [e.dataset.hour, +e.dataset.value, e.dataset.prev])"
    )
    assert len(hours) == 24 * len(m["dates"])
    assert sum(v for _, v, _ in hours) == m["rows_written_total"]
    for day in m["dates"]:
        written = sum(days.get(day, 0) for days in m["rows_written"].values())
        assert sum(v for h, v, _ in hours if h.startswith(day)) == written
        assert page.get_attribute(f'[data-chart="hourly"] [data-day="{day}"]', "data-value") == str(written)
    segments = page.eval_on_selector_all('[data-chart="hourly"] rect.seg', "els => els.reduce((n, e) => n + +e.dataset.value, 0)")
    assert segments == m["rows_written_total"]
    assert sum(int(p) for _, _, p in hours) == pm["rows_written_total"]  # same days: hour by hour
    legend = page.eval_on_selector_all("#hourly [data-legend]", "els => els.map(e => e.dataset.legend)")
    assert set(legend) == set(m["duplicates_removed"]["by_source"]) | {"server"}

    # 4. rows per stream and day
    assert view.ints("rows") == {f"{s}/{d}": days.get(d, 0) for s, days in m["rows_written"].items() for d in m["dates"]}
    assert view.ints("rows", "prev") == {
        f"{s}/{d}": pm["rows_written"].get(s, {}).get(d, 0) for s, days in m["rows_written"].items() for d in m["dates"]
    }

    # 2. duplicates by kind, by source, top 20 names
    dup = m["duplicates_removed"]
    assert view.ints("dup-kind") == dup["by_kind"]
    assert view.ints("dup-source") == dup["by_source"]
    names = page.eval_on_selector_all('[data-chart="dup-names"] [data-key]', "els => els.map(e => [e.dataset.key, +e.dataset.value])")
    assert names == [list(x) for x in dup["top_names"][:20]]
    assert page.text_content('[data-chart="dup-kind"] [data-key="exact"] .value').startswith(f"{dup['by_kind']['exact']:,}")

    # 3. rejects by reason, with at most three masked, cut example lines
    assert view.ints("rejects") == m["rejected"]
    for reason in m["rejected"]:
        codes = page.eval_on_selector_all(f'[data-examples="{reason}"] code', "els => els.map(e => e.textContent)")
        assert 1 <= len(codes) <= 3
        for code in codes:
            assert len(code) <= rd.EXAMPLE_CHARS + 1
            assert not re.search(r'"(username|ip|session)": "(?![*\u2026])', code), code  # masked (maybe cut in the mask)
            assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", code), code

    # 5. research package per org
    orgs: dict[str, int] = {}
    for f in m["research_package"]["files"]:
        orgs[f["org"]] = orgs.get(f["org"], 0) + f["bytes"]
    assert view.ints("packages") == orgs
    assert page.locator("[data-file]").count() == len(m["research_package"]["files"])

    # every chart is drawn and visible
    for chart in ("reconciliation", "hourly", "rows", "dup-kind", "dup-source", "dup-names", "rejects", "packages"):
        box = page.locator(f'svg[data-chart="{chart}"]').bounding_box()
        assert box and box["width"] > 300 and box["height"] > 20, chart
    view.screenshot(ARTIFACTS / "report.png")


@pytest.mark.slow
def test_report_in_browser_flags_a_broken_day(browser, runs, tmp_path):
    """A run that lost one server's log of its second day, against the complete run: the day's
    rows and hours stand out in red, and the change summary on top names them."""
    out, _ = runs
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    m = _manifest(broken)
    day = m["dates"][1]
    # drop the day's biggest research files until a third of its rows are gone, as if their
    # input had not arrived
    part = next(p for p in m["partitions"] if p["stream"] == "research" and p["dt"] == day)
    sizes = {name: pq.read_metadata(broken / part["path"] / name).num_rows for name in part["files"]}
    dropped = 0
    for name in sorted(sizes, key=lambda n: -sizes[n]):
        if dropped >= part["rows"] / 3:
            break
        (broken / part["path"] / name).unlink()
        part["files"].remove(name)
        dropped += sizes[name]
    part["rows"] -= dropped
    m["rows_written"]["research"][day] -= dropped
    m["rows_written_total"] -= dropped
    (broken / "_manifest.json").write_text(json.dumps(m))
    assert dropped > 0

    html_path = report.write_report(str(broken), str(tmp_path / "broken.html"), compare=str(out))
    view = Page(browser, html_path)
    assert view.errors == []
    page = view.page
    row = page.locator(f'[data-chart="rows"] [data-key="research/{day}"]')
    assert row.get_attribute("class") == "row big"
    assert int(row.get_attribute("data-value")) == m["rows_written"]["research"][day]
    change = row.locator("text.change")
    assert change.text_content().startswith("\u2212") and change.evaluate("e => getComputedStyle(e).fill") == "rgb(198, 40, 40)"
    flagged_hours = page.eval_on_selector_all('[data-chart="hourly"] g.hour.big', "els => els.map(e => e.dataset.hour)")
    assert flagged_hours and all(h.startswith(day) for h in flagged_hours)
    assert page.locator('[data-chart="hourly"] .big-mark').count() == len(flagged_hours)
    summary = page.inner_text("#changes")
    assert f"research \u00b7 {day}" in summary
    view.screenshot(ARTIFACTS / "report-broken-day.png")


def save_readme_screenshot(html_path: str, png: Path = ROOT / "docs" / "report-screenshot.png", height: int = 2600) -> None:
    """The picture in the README: the top of a report at 1280px (run by hand, not by the tests)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": height})
        page.goto(Path(html_path).resolve().as_uri())
        png.write_bytes(page.screenshot(clip={"x": 0, "y": 0, "width": 1280, "height": height}))
        browser.close()


@pytest.mark.slow
def test_storage_section_shows_the_bytes_each_day_costs(runs):
    """The limits question: bytes written per output kind and day, and the raw-to-stored ratio,
    exactly as the manifest records them (which the files on disk add up to)."""
    out = runs[0]
    m = _manifest(out)
    written = m["bytes_written"]
    on_disk = sum(
        p.stat().st_size
        for sub in ("warehouse", "duplicates", "rejects", "research_package")
        for p in (out / sub).rglob("*")
        if p.is_file()
    )
    recorded = sum(sum(d.values()) for d in written["warehouse"].values()) + sum(written["duplicates"].values())
    recorded += written["rejects"] + sum(written["packages"].values())
    package_manifests = sum(p.stat().st_size for p in (out / "research_package").rglob("MANIFEST-*.json"))
    assert recorded == on_disk - package_manifests
    assert m["bytes_read"] == sum(i["bytes"] for i in m["inputs"])
    page = Path(report.write_report(str(out))).read_text()
    section = page[page.index('id="storage"') :]
    bars = dict(re.findall(r'data-key="([^"]+)" data-value="(\d+)"', section[: section.index("</svg>")]))
    for day, n in written["duplicates"].items():
        assert int(bars[f"{day}/duplicates"]) == n
    for day in written["warehouse"]["research"]:
        assert int(bars[f"{day}/warehouse"]) == sum(days.get(day, 0) for days in written["warehouse"].values())
    assert f'<b class="ratio">{(recorded) / m["bytes_read"]:.2f}</b>' in section
