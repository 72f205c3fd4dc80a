"""A shared (PostgreSQL) ledger that never loses a paid call: rows it cannot write wait in a local spool.

    SpoolingLedger(shared_dsn, spool_path)      # raises LedgerError when the shared ledger is unreachable at open
        .record(row)           shared ledger, or the spool once the shared ledger failed in this process
        .spent_today_usd()     shared spend + spooled rows; raises LedgerError when the spend is unknown
        .mark_escalated(...), .set_review(...)   in the spool and in the shared ledger; never raise for it
        .unreachable           None, or what went wrong with the shared ledger during this run
        .spooled               rows this process put in the spool

The spool is a SQLite ledger in the state directory (the same schema, WAL, `synchronous=FULL`: each
row is fsync'd when `record` returns), one per shared ledger. Whenever route-agent reaches the shared
ledger again (any command that opens it), the spooled rows are written to it once and in order
(oldest first, under a file lock so two processes do not interleave; `ON CONFLICT (attempt_id) DO
NOTHING` makes a replay cut short by a crash safe to repeat) and leave the spool.

Budgets fail safe: once the shared ledger cannot be read, today's spend is the last figure read from
it in this process, plus the rows this process wrote there since, plus every spooled row of today;
without such a figure the spend is unknown and `spent_today_usd` raises (the budget guard then
refuses to spend, with a message).
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from route_agent.ledger.store import AttemptRow, LedgerError, PostgresLedger, SqliteLedger, redact_dsn


def spool_path_for(location: str, state: Path) -> Path:
    """The spool of the shared ledger at `location` (its password left out of the name's hash)."""
    digest = hashlib.sha256(redact_dsn(location).encode()).hexdigest()[:12]
    return state / f"ledger-spool-{digest}.sqlite3"


class SpoolingLedger:
    def __init__(self, dsn: str, spool_path: Path) -> None:
        self.spool_path = spool_path
        self.unreachable: str | None = None
        self.spooled = 0
        self._spool: SqliteLedger | None = None
        self._base_usd: float | None = None
        self._since_base_usd = 0.0
        self._shared = PostgresLedger(dsn)
        self.location = self._shared.location
        try:
            self.replayed = self.replay()
        except LedgerError:
            self._shared.close()
            raise

    # -- writing ---------------------------------------------------------------------------------
    def record(self, row: AttemptRow) -> None:
        if self.unreachable is None:
            try:
                self._shared.record(row)
                self._since_base_usd += row.cost_usd
                return
            except LedgerError as exc:
                self._lost(exc)
        self._spool_ledger().record(row)
        self.spooled += 1

    def replay(self) -> int:
        """Write the spooled rows to the shared ledger, oldest first; the number written."""
        if not self.spool_path.exists():
            return 0
        with self.spool_path.with_name(self.spool_path.name + ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            spool = self._spool_ledger()
            written = 0
            for rowid, row in spool.spooled_rows():
                self._shared.record(row)  # idempotent by attempt_id: a replay cut short is repeated safely
                spool.forget(rowid)
                written += 1
            return written

    # -- reading ---------------------------------------------------------------------------------
    def spent_today_usd(self) -> float:
        if self.unreachable is None:
            try:
                shared = self._shared.spent_today_usd()
            except LedgerError as exc:
                self._lost(exc)
            else:
                self._base_usd, self._since_base_usd = shared, 0.0
                return shared + self._spooled_today_usd()
        if self._base_usd is None:
            raise LedgerError(f"today's spend is unknown: the team ledger at {self.location} cannot be read ({self.unreachable})")
        return self._base_usd + self._since_base_usd + self._spooled_today_usd()

    def rows(self, since: str | None = None) -> list[AttemptRow]:
        spooled = [row for _, row in self._spool_ledger().spooled_rows()] if self.spool_path.exists() else []
        if since:
            spooled = [row for row in spooled if row.created_at >= since]
        return self._shared.rows(since) + spooled

    def set_review(self, run_id: str, review: str, reason: str | None = None, commit_id: str | None = None) -> int:
        spooled = self._spool_ledger().set_review(run_id, review, reason, commit_id) if self.spool_path.exists() else 0
        return spooled + self._shared_or_zero(lambda: self._shared.set_review(run_id, review, reason, commit_id))

    def mark_escalated(self, run_id: str, attempt_no: int, reason: str) -> int:
        """Mark the attempt wherever it is: still in the spool (replayed with the mark), or shared."""
        spooled = self._spool_ledger().mark_escalated(run_id, attempt_no, reason) if self.spool_path.exists() else 0
        return spooled + self._shared_or_zero(lambda: self._shared.mark_escalated(run_id, attempt_no, reason))

    def close(self) -> None:
        self._shared.close()
        if self._spool is not None:
            self._spool.close()

    # -- internals -------------------------------------------------------------------------------
    def _shared_or_zero(self, update: Callable[[], int]) -> int:
        if self.unreachable is None:
            try:
                return update()
            except LedgerError as exc:
                self._lost(exc)
        return 0

    def _lost(self, exc: LedgerError) -> None:
        self.unreachable = str(exc)

    def _spool_ledger(self) -> SqliteLedger:
        if self._spool is None:
            self._spool = SqliteLedger(self.spool_path)
        return self._spool

    def _spooled_today_usd(self) -> float:
        if not self.spool_path.exists():
            return 0.0
        today = datetime.now(UTC).date().isoformat()
        return sum(row.cost_usd for _, row in self._spool_ledger().spooled_rows() if row.created_at >= today)
