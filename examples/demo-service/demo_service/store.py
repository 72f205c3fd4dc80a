"""Orders in SQLite. The schema lives in migrations/."""

from __future__ import annotations

import sqlite3
from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class OrderStore:
    def __init__(self, path: str = ":memory:") -> None:
        self.db = sqlite3.connect(path)
        for script in sorted(MIGRATIONS.glob("*.sql")):
            self.db.executescript(script.read_text())

    def upsert(self, order: dict[str, object]) -> None:
        self.db.execute(
            "INSERT INTO orders (id, status, total_cents) VALUES (:id, :status, :total_cents) "
            "ON CONFLICT(id) DO UPDATE SET status = excluded.status, total_cents = excluded.total_cents",
            order,
        )

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM orders").fetchone()[0])
