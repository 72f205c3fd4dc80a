"""The sync worker: fetch batches from upstream, retry transient failures, store the orders."""

from __future__ import annotations

import time
from collections.abc import Callable

from demo_service.pool import ConnectionPool
from demo_service.retry import Backoff
from demo_service.store import OrderStore


class TransientError(Exception):
    """The upstream failed in a way worth retrying (timeout, 503)."""


class SyncWorker:
    def __init__(self, upstream: object, store: OrderStore, pool: ConnectionPool | None = None,
                 backoff: Backoff | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.upstream = upstream
        self.store = store
        self.pool = pool or ConnectionPool()
        self.backoff = backoff or Backoff()
        self.sleep = sleep

    def fetch_batch(self, cursor: int) -> list[dict[str, object]]:
        for attempt in range(1, self.backoff.attempts + 1):
            conn = self.pool.acquire()
            try:
                return conn.fetch(cursor, self.upstream)
            except TransientError:
                self.sleep(self.backoff.delay(attempt))
            finally:
                # Every attempt gives its connection back, failed or not.
                self.pool.release(conn)
        raise TransientError(f"upstream failed {self.backoff.attempts} times at cursor {cursor}")

    def run_once(self, cursor: int) -> int:
        batch = self.fetch_batch(cursor)
        for order in batch:
            self.store.upsert(order)
        return len(batch)
