"""The ledger on SQLite and a real PostgreSQL server: migrations, rows, report, export, crash safety."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from route_agent.ledger import AttemptRow, LedgerError, open_ledger
from route_agent.ledger.report import lane_figures, percentile, report_json
from route_agent.ledger.store import SqliteLedger
from support.postgres import throwaway_postgres


def rows() -> list[AttemptRow]:
    return [
        AttemptRow(run_id="r1", repo="/r", lane="fast", model="m-fast", risk_score=2, passed=False, escalated=True,
                   escalation_reason="tamper", result="fail", failure_kind="tamper", latency_s=2.0, cost_usd=0.01),
        AttemptRow(run_id="r1", repo="/r", lane="strong", model="m-strong", risk_score=2, passed=True, attempt_no=2,
                   result="pass", latency_s=10.0, cost_usd=0.2, confidence=0.9),
        AttemptRow(run_id="r2", repo="/r", lane="fast", model="m-fast", risk_score=1, passed=True, result="pass", latency_s=4.0, cost_usd=0.02),
        AttemptRow(run_id="r3", repo="/r", lane="fast", model="m-fast", risk_score=1, passed=False, result="fail",
                   failure_kind="failed_tests", latency_s=6.0, cost_usd=0.02),
        AttemptRow(run_id="r4", repo="/r", lane="fast", model="m-fast", risk_score=1, passed=False, result="fail",
                   failure_kind="failed_tests", latency_s=8.0, cost_usd=0.02),
    ]


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with throwaway_postgres() as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        store = open_ledger(str(tmp_path / "ledger.sqlite3"))
    else:
        store = open_ledger(request.getfixturevalue("pg_dsn"))
        store._shared._db.execute("TRUNCATE attempts")  # type: ignore[attr-defined]  # the shared ledger behind the spool
    yield store
    store.close()


def test_rows_round_trip_and_never_duplicate(ledger) -> None:  # type: ignore[no-untyped-def]
    data = rows()
    for row in data:
        ledger.record(row)
    ledger.record(data[0])  # a retried write of the same attempt
    stored = ledger.rows()
    assert len(stored) == len(data)
    assert {r.attempt_id for r in stored} == {r.attempt_id for r in data}
    first = next(r for r in stored if r.attempt_id == data[1].attempt_id)
    assert first.passed is True and first.confidence == 0.9 and first.lane == "strong"
    assert ledger.spent_today_usd() == pytest.approx(0.27)


def test_rows_since_a_time_come_in_order_and_the_day_counts_only_today(ledger) -> None:  # type: ignore[no-untyped-def]
    old = AttemptRow(run_id="r0", repo="/r", lane="fast", model="m", risk_score=1, passed=True, result="pass", cost_usd=5.0,
                     created_at="2001-01-01T00:00:00+00:00")
    data = rows()
    for row in [*reversed(data), old]:
        ledger.record(row)
    since = [r.attempt_id for r in ledger.rows(since="2020-01-01")]
    assert since == [r.attempt_id for r in sorted(data, key=lambda r: (r.created_at, r.run_id, r.attempt_no))]
    assert [r.attempt_id for r in ledger.rows()] == [old.attempt_id, *since]
    assert ledger.spent_today_usd() == pytest.approx(0.27)  # the 2001 row is not today's


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_store_that_fails_says_which_ledger_and_what_failed(store: str, tmp_path: Path,
                                                               request: pytest.FixtureRequest) -> None:
    from route_agent.ledger.store import PostgresLedger

    ledger = SqliteLedger(tmp_path / "l.sqlite3") if store == "sqlite" else PostgresLedger(request.getfixturevalue("pg_dsn"))
    ledger.close()
    with pytest.raises(LedgerError, match=r"^cannot read the ledger at "):
        ledger.rows()
    with pytest.raises(LedgerError, match=r"^cannot write to the ledger at "):
        ledger.set_review("r1", "accepted")


def test_review_is_recorded_on_the_passing_attempt(ledger) -> None:  # type: ignore[no-untyped-def]
    for row in rows():
        ledger.record(row)
    assert ledger.set_review("r1", "rejected") == 1
    figures = {f.lane: f for f in lane_figures(ledger.rows())}
    assert figures["strong"].review_rejection_rate == 1.0
    assert figures["fast"].review_rejection_rate is None


def test_lane_figures() -> None:
    figures = {f.lane: f for f in lane_figures(rows())}
    fast = figures["fast"]
    assert (fast.attempts, fast.passed, fast.escalations) == (4, 1, 1)
    assert fast.pass_rate == 0.25 and fast.escalation_rate == 0.25
    assert fast.latency_p50_s == 5.0 and fast.latency_p90_s == pytest.approx(7.4)
    assert fast.common_failure == "failed_tests"
    assert figures["strong"].pass_rate == 1.0
    report = report_json(rows(), "x")
    assert report["tasks"] == 4 and report["tasks_passed"] == 2


@pytest.mark.parametrize(("values", "q", "expected"), [
    pytest.param([1.0], 90, 1.0, id="single"), pytest.param([1.0, 2.0, 3.0, 4.0], 50, 2.5, id="median-even"),
    pytest.param([], 50, None, id="empty")])
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


def test_sqlite_is_wal_and_versioned(tmp_path: Path) -> None:
    store = SqliteLedger(tmp_path / "l.sqlite3")
    assert store.schema_version == 7
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    store.close()


def test_sqlite_migrates_a_version_1_ledger(tmp_path: Path) -> None:
    from route_agent.ledger.store import _SQLITE_MIGRATIONS

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(_SQLITE_MIGRATIONS[0] + ";\nPRAGMA user_version=1;")
    db.execute("INSERT INTO attempts (attempt_id, run_id, created_at, repo, lane, model, risk_score, passed, result) "
               "VALUES ('a1', 'r1', '2026-01-01T00:00:00+00:00', '/r', 'fast', 'm', 2, 1, 'pass')")
    db.commit()
    db.close()
    again = SqliteLedger(path)
    assert again.schema_version == len(_SQLITE_MIGRATIONS)
    (row,) = again.rows()
    assert row.run_id == "r1" and row.task == "r1" and row.task_id == "r1"
    assert (row.executor, row.steps) == ("oneshot", 0), "rows from before agent lanes were one-shot calls"
    again.close()


def test_agent_steps_and_executor_are_recorded_and_reported(ledger) -> None:  # type: ignore[no-untyped-def]
    ledger.record(AttemptRow(run_id="r", repo="/r", lane="fast", model="m", risk_score=1, passed=False, executor="builtin", steps=7,
                             input_tokens=900, output_tokens=120, cost_usd=0.01))
    ledger.record(AttemptRow(run_id="r", repo="/r", lane="strong", model="m", risk_score=1, passed=True, attempt_no=2,
                             executor="aider"))
    rows = {r.lane: r for r in ledger.rows()}
    assert (rows["fast"].executor, rows["fast"].steps, rows["fast"].input_tokens) == ("builtin", 7, 900)
    assert rows["strong"].executor == "aider"
    report = report_json(ledger.rows(), "x")
    assert {lane["lane"]: lane["steps"] for lane in report["lanes"]} == {"fast": 7, "strong": 0}


def test_escalation_marked_after_the_fact_and_tasks_spanning_runs(ledger) -> None:  # type: ignore[no-untyped-def]
    store = ledger
    store.record(AttemptRow(run_id="fast-run", repo="/r", lane="fast", model="m", risk_score=1, passed=False, result="fail"))
    store.record(AttemptRow(run_id="strong-run", task_id="fast-run", attempt_no=2, repo="/r", lane="strong", model="m",
                            risk_score=1, passed=True, result="pass"))
    assert store.mark_escalated("fast-run", 1, "user: tamper") == 1
    report = report_json(store.rows(), "x")
    assert report["tasks"] == 1 and report["tasks_passed"] == 1
    fast = next(lane for lane in report["lanes"] if lane["lane"] == "fast")
    assert fast["escalations"] == 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(LedgerError, match="newer than this route-agent"):
        SqliteLedger(path)


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="move the file aside"):
        SqliteLedger(path)


def test_killed_writer_loses_no_written_row(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite3"
    code = (
        "import os, signal, sys\n"
        "from route_agent.ledger import AttemptRow, open_ledger\n"
        "store = open_ledger(sys.argv[1])\n"
        "for i in range(25):\n"
        "    store.record(AttemptRow(run_id=f'r{i}', repo='/r', lane='fast', model='m', risk_score=1, passed=True, result='pass'))\n"
        "    print(i, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -9
    written = len(proc.stdout.split())
    store = open_ledger(str(path))
    assert len(store.rows()) == written == 25
    store.close()


def test_cli_report_and_export(tmp_path: Path) -> None:
    path = tmp_path / "cli.sqlite3"
    store = open_ledger(str(path))
    for row in rows():
        store.record(row)
    store.close()
    env = dict(os.environ, ROUTE_AGENT_STATE_DIR=str(tmp_path / "state"))
    out = subprocess.run([sys.executable, "-m", "route_agent", "ledger", "report", "--json", "--ledger", str(path)],
                         capture_output=True, text=True, env=env, check=True).stdout
    data = json.loads(out)
    lanes = {lane["lane"]: lane for lane in data["lanes"]}
    assert lanes["fast"]["attempts"] == 4 and lanes["strong"]["passed"] == 1
    table = subprocess.run([sys.executable, "-m", "route_agent", "ledger", "report", "--ledger", str(path)],
                           capture_output=True, text=True, env=env, check=True).stdout
    assert "pass rate" in table and "failed_tests" in table
    exported = subprocess.run([sys.executable, "-m", "route_agent", "ledger", "export", "--csv", "--ledger", str(path)],
                              capture_output=True, text=True, env=env, check=True).stdout
    parsed = list(csv.DictReader(io.StringIO(exported)))
    assert len(parsed) == 5 and parsed[0]["lane"] in ("fast", "strong")


def test_unreachable_postgres_is_a_clear_error(tmp_path: Path) -> None:
    env = dict(os.environ, ROUTE_AGENT_STATE_DIR=str(tmp_path / "state"))
    proc = subprocess.run([sys.executable, "-m", "route_agent", "ledger", "report", "--ledger",
                           f"postgresql://nobody:hunter2@/db?host={tmp_path}/nosock"], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 2
    assert "cannot connect to the ledger" in proc.stderr and "hunter2" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sqlite_urls_name_the_file(tmp_path: Path) -> None:
    """`--ledger sqlite:///x` made a folder named 'sqlite:'; it is SQLAlchemy's form of a path."""
    env = dict(os.environ, ROUTE_AGENT_STATE_DIR=str(tmp_path / "state"))
    store = open_ledger(str(tmp_path / "team.sqlite3"))
    for row in rows():
        store.record(row)
    store.close()
    for url in ("sqlite:///team.sqlite3", f"sqlite:///{tmp_path}/team.sqlite3"):
        proc = subprocess.run([sys.executable, "-m", "route_agent", "ledger", "report", "--json", "--ledger", url],
                              capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
        assert proc.returncode == 0, proc.stderr
        assert {lane["lane"]: lane["attempts"] for lane in json.loads(proc.stdout)["lanes"]} == {"fast": 4, "strong": 1}
    assert not (tmp_path / "sqlite:").exists()


@pytest.mark.parametrize(
    ("location", "says"),
    [
        pytest.param("typo-folder/ledger.sqlite3", "does not exist", id="missing-folder"),
        pytest.param("sqlite:///typo-folder/ledger.sqlite3", "does not exist", id="missing-folder-url"),
        pytest.param("sqlite://ledger.sqlite3", "sqlite:///", id="two-slashes"),
        pytest.param("mysql://u@h/db", "unknown ledger URL scheme", id="other-scheme"),
    ],
)
def test_a_mistyped_ledger_is_refused_not_created(tmp_path: Path, location: str, says: str) -> None:
    env = dict(os.environ, ROUTE_AGENT_STATE_DIR=str(tmp_path / "state"))
    proc = subprocess.run([sys.executable, "-m", "route_agent", "ledger", "report", "--ledger", location],
                          capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert says in proc.stderr and "Traceback" not in proc.stderr
    assert {p.name for p in tmp_path.iterdir()} <= {"state"}, "a folder or an empty ledger was created"


def test_plan_and_predictions_round_trip(ledger) -> None:  # type: ignore[no-untyped-def]
    predicted = {"fast": 0.31, "strong": 0.62, "strong_after_fast_failed": 0.5}
    ledger.record(AttemptRow(run_id="p1", repo="r", lane="fast", model="m", risk_score=1, passed=False, plan="stop-after-fast",
                             predicted=predicted))
    ledger.record(AttemptRow(run_id="p2", repo="r", lane="strong", model="m", risk_score=9, passed=True))
    stored = {row.run_id: row for row in ledger.rows()}
    assert (stored["p1"].plan, stored["p1"].predicted) == ("stop-after-fast", predicted)
    assert (stored["p2"].plan, stored["p2"].predicted) == (None, {})
def test_a_shared_ledger_that_dies_spools_counts_the_spool_in_the_day_and_replays_once(tmp_path: Path) -> None:
    from route_agent.ledger.spool import SpoolingLedger, spool_path_for
    from support.postgres import restartable_postgres

    with restartable_postgres() as server:
        spool = spool_path_for(server.dsn, tmp_path)
        ledger = SpoolingLedger(server.dsn, spool)
        first, second, third = rows()[:3]
        ledger.record(first)
        assert ledger.spent_today_usd() == pytest.approx(first.cost_usd) and not spool.exists()
        server.kill()
        ledger.record(second)
        ledger.record(third)
        assert ledger.unreachable and "cannot" in ledger.unreachable and ledger.spooled == 2
        assert ledger.mark_escalated(third.run_id, third.attempt_no, "user: failed") == 1  # the spooled row carries the mark
        # what the shared ledger said last, plus what was spooled since: the budget still sees every paid call
        assert ledger.spent_today_usd() == pytest.approx(first.cost_usd + second.cost_usd + third.cost_usd)
        ledger.close()
        with pytest.raises(LedgerError, match="cannot connect"):
            SpoolingLedger(server.dsn, spool)
        server.start()
        back = SpoolingLedger(server.dsn, spool)
        assert back.replayed == 2 and back.spent_today_usd() == pytest.approx(first.cost_usd + second.cost_usd + third.cost_usd)
        back.close()
        again = SpoolingLedger(server.dsn, spool)
        assert again.replayed == 0
        assert sorted(r.attempt_id for r in again.rows()) == sorted(r.attempt_id for r in (first, second, third))
        assert next(r for r in again.rows() if r.attempt_id == third.attempt_id).escalated is True
        again.close()


def test_an_unknown_day_spend_refuses_the_call() -> None:
    from route_agent.lanes.budget import BudgetGuard, TaskSpend
    from route_agent.lanes.errors import LaneError
    from route_agent.policy.models import Budgets

    class Unreadable:
        def spent_today_usd(self) -> float:
            raise LedgerError("today's spend is unknown: the team ledger at postgresql://x cannot be read (server closed)")

    guard = BudgetGuard(Budgets(per_day_usd=10.0), Unreadable())
    with pytest.raises(LaneError, match="today's spend is unknown") as caught:
        guard.check_before(TaskSpend(), 0.01, "m")
    assert caught.value.kind == "budget"
    assert BudgetGuard(Budgets(per_day_usd=None), Unreadable()).check_before(TaskSpend(), 0.01, "m") is None
