"""Ledger storage: SQLite and PostgreSQL behind one small interface."""

from __future__ import annotations

import json
import sqlite3
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

COLUMNS = (
    "attempt_id",
    "run_id",
    "created_at",
    "repo",
    "brief",
    "lane",
    "model",
    "attempt_no",
    "risk_score",
    "signals",
    "passed",
    "confidence",
    "escalated",
    "escalation_reason",
    "result",
    "failure_kind",
    "latency_s",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "findings_count",
    "review",
    "task_id",
    "plan",
    "predicted",
    "cost_estimated",
    "executor",
    "steps",
    "review_reason",
    "commit_id",
)


def _redacted(value: Any) -> Any:
    """`value` with every secret in its strings redacted as in a prompt (`[REDACTED:<rule>]`): a
    brief or an excerpt of it may carry a key, and the ledger is kept and shared (issue 12, item 12)."""
    if isinstance(value, str):
        from route_agent.lanes.outbound import redact_lines

        lines = value.split("\n")
        return "\n".join(lines) if redact_lines(lines) else value
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


class LedgerError(Exception):
    """The ledger cannot be opened or written; the message says where and why."""


@dataclass
class AttemptRow:
    run_id: str
    repo: str
    lane: str
    model: str
    risk_score: int
    passed: bool
    attempt_no: int = 1
    brief: str = ""
    signals: dict[str, Any] = field(default_factory=dict)
    confidence: float | None = None
    escalated: bool = False
    escalation_reason: str | None = None
    result: str = "fail"
    """pass, fail, patch_rejected, error"""
    failure_kind: str | None = None
    latency_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    findings_count: int = 0
    review: str | None = None
    """accepted or rejected by the user, once they decide"""
    task_id: str | None = None
    """The task this attempt belongs to when one task spans runs (an escalation the user started
    from the editor); None means the run is the task."""
    plan: str | None = None
    """The task's plan: cascade, strong-only, fast-only or stop-after-fast."""
    predicted: dict[str, float] = field(default_factory=dict)
    """A learned policy's predicted probabilities (fast, strong, strong_after_fast_failed); empty without one."""
    cost_estimated: bool = False
    """True when the cost is estimated from what was sent and received (the reply had no usage data,
    or reading stopped at the reply cap), not the provider's figure."""
    executor: str = "oneshot"
    """What drove the lane: builtin (the agent loop), oneshot, or an external agent's name."""
    steps: int = 0
    """Model replies in the agent loop (0 for a one-shot call or an external agent)."""
    review_reason: str | None = None
    """Why the user rejected the patch in review (`ledger mark RUN_ID --rejected REASON`)."""
    commit_id: str | None = None
    """The commit `apply --commit` made of the patch."""
    attempt_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def values(self) -> tuple[Any, ...]:
        data = asdict(self)
        data["signals"] = json.dumps(_redacted(self.signals), sort_keys=True)
        data["passed"] = int(self.passed)
        data["escalated"] = int(self.escalated)
        data["cost_estimated"] = int(self.cost_estimated)
        data["brief"] = _redacted(self.brief)[:500]  # redacted whole, then cut: a cut secret would not match
        data["task_id"] = self.task_id or self.run_id
        data["predicted"] = json.dumps(self.predicted, sort_keys=True) if self.predicted else None
        return tuple(data[c] for c in COLUMNS)

    @property
    def task(self) -> str:
        return self.task_id or self.run_id

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> AttemptRow:
        data = dict(zip(COLUMNS, values, strict=True))
        try:
            data["signals"] = json.loads(data["signals"] or "{}")
        except ValueError:
            data["signals"] = {}
        try:
            predicted = json.loads(data.get("predicted") or "{}")
        except ValueError:
            predicted = {}
        data["predicted"] = {k: float(v) for k, v in predicted.items() if isinstance(v, int | float)} if isinstance(predicted, dict) else {}
        data["passed"] = bool(data["passed"])
        data["escalated"] = bool(data["escalated"])
        data["cost_estimated"] = bool(data["cost_estimated"])
        if isinstance(data["created_at"], datetime):
            data["created_at"] = data["created_at"].isoformat(timespec="seconds")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Ledger(Protocol):
    location: str

    def record(self, row: AttemptRow) -> None: ...
    def set_review(self, run_id: str, review: str, reason: str | None = None, commit_id: str | None = None) -> int: ...
    def mark_escalated(self, run_id: str, attempt_no: int, reason: str) -> int: ...
    def rows(self, since: str | None = None) -> list[AttemptRow]: ...
    def spent_today_usd(self) -> float: ...
    def close(self) -> None: ...


# One definition of the attempts table for both stores; `{real}` is the floating-point type.
_ATTEMPTS_DDL = """
    CREATE TABLE {if_not_exists} attempts (
        attempt_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        repo TEXT NOT NULL,
        brief TEXT NOT NULL DEFAULT '',
        lane TEXT NOT NULL,
        model TEXT NOT NULL,
        attempt_no INTEGER NOT NULL DEFAULT 1,
        risk_score INTEGER NOT NULL,
        signals TEXT NOT NULL DEFAULT '{{}}',
        passed INTEGER NOT NULL,
        confidence {real},
        escalated INTEGER NOT NULL DEFAULT 0,
        escalation_reason TEXT,
        result TEXT NOT NULL,
        failure_kind TEXT,
        latency_s {real} NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd {real} NOT NULL DEFAULT 0,
        findings_count INTEGER NOT NULL DEFAULT 0,
        review TEXT
    );
    CREATE INDEX {if_not_exists} attempts_run ON attempts(run_id)
"""


def _migrations(real: str, if_not_exists: str) -> tuple[str, ...]:
    return (
        # 1: the attempts table
        _ATTEMPTS_DDL.format(real=real, if_not_exists=if_not_exists),
        # 2: reports filter by time and lane
        f"CREATE INDEX {if_not_exists} attempts_time ON attempts(created_at); CREATE INDEX {if_not_exists} attempts_lane ON attempts(lane)",
        # 3: one task may span runs (an escalation started from the editor is a new run of the same task)
        f"ALTER TABLE attempts ADD COLUMN {if_not_exists} task_id TEXT; UPDATE attempts SET task_id = run_id WHERE task_id IS NULL",
        # 4: the plan a task ran under and a learned policy's predictions (ledger report: predicted vs observed)
        f"ALTER TABLE attempts ADD COLUMN {if_not_exists} plan TEXT; ALTER TABLE attempts ADD COLUMN {if_not_exists} predicted TEXT",
        # 5: a cost estimated from what was received (no usage data, or a reply stopped at the cap)
        f"ALTER TABLE attempts ADD COLUMN {if_not_exists} cost_estimated INTEGER NOT NULL DEFAULT 0",
        # 6: lanes are agents: which executor drove the attempt and how many steps it took
        f"ALTER TABLE attempts ADD COLUMN {if_not_exists} executor TEXT NOT NULL DEFAULT 'oneshot'; "
        f"ALTER TABLE attempts ADD COLUMN {if_not_exists} steps INTEGER NOT NULL DEFAULT 0",
        # 7: review events: why a patch was rejected, and the commit an accepted one became
        f"ALTER TABLE attempts ADD COLUMN {if_not_exists} review_reason TEXT; "
        f"ALTER TABLE attempts ADD COLUMN {if_not_exists} commit_id TEXT",
    )


_SQLITE_MIGRATIONS = _migrations("REAL", "")
_PG_MIGRATIONS = _migrations("DOUBLE PRECISION", "IF NOT EXISTS")


@dataclass(frozen=True)
class _Queries:
    """The ledger's statements, written once for both stores. They differ only in the parameter
    marker and in how an insert skips an attempt already recorded (a replayed spool repeats rows)."""

    insert: str
    set_review: str
    mark_escalated: str
    rows: str
    rows_since: str
    spent_since: str

    @classmethod
    def build(cls, mark: str, insert: str, on_conflict: str) -> _Queries:
        columns = ", ".join(COLUMNS)
        select, order = f"SELECT {columns} FROM attempts", " ORDER BY created_at, run_id, attempt_no"
        return cls(
            insert=f"{insert} INTO attempts ({columns}) VALUES ({', '.join(mark for _ in COLUMNS)}){on_conflict}",
            set_review=f"UPDATE attempts SET review={mark}, review_reason={mark}, commit_id={mark} WHERE run_id={mark} AND passed=1",
            mark_escalated=f"UPDATE attempts SET escalated=1, escalation_reason={mark} WHERE run_id={mark} AND attempt_no={mark}",
            rows=select + order,
            rows_since=f"{select} WHERE created_at >= {mark}{order}",
            spent_since=f"SELECT COALESCE(SUM(cost_usd), 0) FROM attempts WHERE created_at >= {mark}",
        )


_SQLITE_QUERIES = _Queries.build("?", "INSERT OR IGNORE", "")
_PG_QUERIES = _Queries.build("%s", "INSERT", " ON CONFLICT (attempt_id) DO NOTHING")


class _SqlLedger(ABC):
    """What both stores do with a row, through one statement set and the store's `_run`."""

    location: str
    _queries: _Queries

    @abstractmethod
    def _run(self, what: str, sql: str, params: Sequence[Any] = ()) -> Any:
        """Execute `sql`; a database failure is a LedgerError saying what could not be done (`what`)."""

    def record(self, row: AttemptRow) -> None:
        self._run("write to", self._queries.insert, row.values())

    def set_review(self, run_id: str, review: str, reason: str | None = None, commit_id: str | None = None) -> int:
        params = (review, _redacted(reason) if reason else None, commit_id, run_id)
        return int(self._run("write to", self._queries.set_review, params).rowcount)

    def mark_escalated(self, run_id: str, attempt_no: int, reason: str) -> int:
        return int(self._run("write to", self._queries.mark_escalated, (reason, run_id, attempt_no)).rowcount)

    def rows(self, since: str | None = None) -> list[AttemptRow]:
        query, params = (self._queries.rows_since, (since,)) if since else (self._queries.rows, ())
        return [AttemptRow.from_values(r) for r in self._run("read", query, params).fetchall()]

    def spent_today_usd(self) -> float:
        today = datetime.now(UTC).date().isoformat()
        row = self._run("read", self._queries.spent_since, (today,)).fetchone()
        return float(row[0]) if row else 0.0


def _make_private(path: Path, created: bool) -> None:
    """A ledger route-agent created, or the one in the state directory, is the user's only (0600);
    a team's existing file elsewhere keeps the mode its owners gave it."""
    from route_agent.workspace.state import make_private, state_dir

    if created or path.parent.resolve() == state_dir().resolve():
        for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if part.exists():
                make_private(part)


class SqliteLedger(_SqlLedger):
    _queries = _SQLITE_QUERIES

    def __init__(self, path: Path) -> None:
        self.location = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            created = not path.exists()
            self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
            _make_private(path, created)  # before WAL mode: SQLite gives -wal and -shm the database's mode
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot open the ledger at {path}: {exc}; move the file aside to start a new one") from None

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(_SQLITE_MIGRATIONS):
            raise LedgerError(
                f"the ledger at {self.location} has schema version {version}, newer than this route-agent knows "
                f"({len(_SQLITE_MIGRATIONS)}); upgrade route-agent"
            )
        for number, script in enumerate(_SQLITE_MIGRATIONS[version:], start=version + 1):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                current = int(self._db.execute("PRAGMA user_version").fetchone()[0])
                if current < number:
                    for statement in script.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version={number}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _run(self, what: str, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            return self._db.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot {what} the ledger at {self.location}: {exc}") from None

    def spooled_rows(self) -> list[tuple[int, AttemptRow]]:
        """Every row in the order it was written (a spool is replayed in this order), with its rowid."""
        rows = self._db.execute(f"SELECT rowid, {', '.join(COLUMNS)} FROM attempts ORDER BY rowid").fetchall()
        return [(int(r[0]), AttemptRow.from_values(r[1:])) for r in rows]

    def forget(self, rowid: int) -> None:
        """Delete one row (a spooled row once the shared ledger holds it)."""
        self._db.execute("DELETE FROM attempts WHERE rowid = ?", (rowid,))

    def close(self) -> None:
        self._db.close()


SCHEMA_LOCK_KEY = 0x726F7574652D6167  # "route-ag": the advisory lock that serialises schema creation and migrations


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PostgresLedger(_SqlLedger):
    """The same rows in PostgreSQL, for a team sharing one ledger."""

    _queries = _PG_QUERIES

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise LedgerError("a postgresql:// ledger needs psycopg: pip install 'route-agent[postgres]'") from None
        self.location = redact_dsn(dsn)
        try:
            self._db = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise LedgerError(
                f"cannot connect to the ledger at {self.location}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"
            ) from None
        self._migrate()

    def _migrate(self) -> None:
        import psycopg

        try:
            self._migrate_locked()
        except psycopg.Error as exc:
            self._db.close()
            raise LedgerError(f"cannot prepare the ledger at {self.location}: {_first_line(exc)}") from None

    def _migrate_locked(self) -> None:
        # Concurrent `CREATE TABLE IF NOT EXISTS` races in PostgreSQL (UniqueViolation on
        # pg_type_typname_nsp_index): every first run takes one advisory lock, held to the end of
        # the transaction, before any DDL, so the schema is created once and the others wait.
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            self._db.execute("CREATE TABLE IF NOT EXISTS route_agent_schema (version INTEGER NOT NULL)")
            self._db.execute("LOCK TABLE route_agent_schema IN EXCLUSIVE MODE")
            row = self._db.execute("SELECT version FROM route_agent_schema").fetchone()
            version = int(row[0]) if row else 0
            if row is None:
                self._db.execute("INSERT INTO route_agent_schema (version) VALUES (0)")
            if version > len(_PG_MIGRATIONS):
                raise LedgerError(
                    f"the ledger at {self.location} has schema version {version}, newer than this route-agent knows; upgrade route-agent"
                )
            for number, script in enumerate(_PG_MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute("UPDATE route_agent_schema SET version = %s", (number,))

    @property
    def schema_version(self) -> int:
        row = self._db.execute("SELECT version FROM route_agent_schema").fetchone()
        return int(row[0]) if row else 0

    def _run(self, what: str, sql: str, params: Sequence[Any] = ()) -> Any:
        import psycopg  # any of its errors: a dead server, a closed connection

        try:
            return self._db.execute(sql, params)
        except psycopg.Error as exc:
            raise LedgerError(f"cannot {what} the ledger at {self.location}: {_first_line(exc)}") from None

    def close(self) -> None:
        self._db.close()


def redact_dsn(dsn: str) -> str:
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return dsn


def default_ledger_path() -> Path:
    from route_agent.workspace.state import state_dir

    return state_dir() / "ledger.sqlite3"


def open_ledger(location: str | None = None) -> Ledger:
    """`None`: SQLite in the state directory; `postgresql://...`: PostgreSQL, with a local spool for rows
    it cannot take (spool.py); `sqlite:///PATH` or a plain path: SQLite there (its folder must exist: a
    mistyped path must not start an empty ledger)."""
    if location is None or location == "":
        return SqliteLedger(default_ledger_path())
    if location.startswith(("postgresql://", "postgres://")):
        from route_agent.ledger.spool import SpoolingLedger, spool_path_for
        from route_agent.workspace.state import state_dir

        return SpoolingLedger(location, spool_path_for(location, state_dir()))
    return SqliteLedger(sqlite_ledger_path(location))


def sqlite_ledger_path(location: str) -> Path:
    """The file a SQLite ledger location names: `sqlite:///rel/x.db` (relative), `sqlite:////abs/x.db`
    (as SQLAlchemy reads them) or a plain path."""
    if location.startswith("sqlite:"):
        rest = location.removeprefix("sqlite:")
        if not rest.startswith("///") or rest == "///":
            raise LedgerError(f"cannot read the ledger URL {location!r}: write sqlite:///relative/path.db or "
                              "sqlite:////absolute/path.db (or just the path)")
        path = Path(rest[3:])
    elif "://" in location:
        scheme = location.split("://", 1)[0]
        raise LedgerError(f"unknown ledger URL scheme {scheme!r} in {redact_dsn(location)!r}: use a path, "
                          "sqlite:///path or postgresql://...")
    else:
        path = Path(location)
    path = path.expanduser()
    if not path.parent.is_dir():
        raise LedgerError(f"the ledger's folder {path.parent} does not exist (ledger {location!r}); "
                          "check the path for a typo, or create the folder first")
    return path
