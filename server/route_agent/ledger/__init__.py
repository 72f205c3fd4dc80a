"""The ledger: one row per lane attempt, so thresholds are tuned from measurements.

SQLite (WAL, versioned schema with migrations) in the user's state directory by default, or
PostgreSQL for a team (`postgresql://...`, via psycopg). Rows are written once per attempt, in
their own transaction, keyed by a unique attempt id: a crash loses nothing already written and a
retry never duplicates a row. Rows a PostgreSQL ledger cannot take wait in a local spool (spool.py).
"""

from __future__ import annotations

from route_agent.ledger.store import AttemptRow, Ledger, LedgerError, open_ledger

__all__ = ["AttemptRow", "Ledger", "LedgerError", "open_ledger"]
