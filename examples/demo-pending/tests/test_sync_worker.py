import pytest

from demo_service.pool import ConnectionPool
from demo_service.store import OrderStore
from demo_service.sync_worker import SyncWorker, TransientError


class FlakyUpstream:
    def __init__(self, failures: int) -> None:
        self.failures = failures

    def fetch(self, cursor: int) -> list[dict[str, object]]:
        if self.failures:
            self.failures -= 1
            raise TransientError("503")
        return [{"id": f"o{cursor}", "status": "paid", "total_cents": 1250}]


def test_run_once_stores_the_batch() -> None:
    store = OrderStore()
    worker = SyncWorker(FlakyUpstream(0), store, sleep=lambda s: None)
    assert worker.run_once(1) == 1
    assert store.count() == 1


def test_gives_up_after_the_last_attempt() -> None:
    worker = SyncWorker(FlakyUpstream(99), OrderStore(), pool=ConnectionPool(size=10), sleep=lambda s: None)
    with pytest.raises(TransientError):
        worker.fetch_batch(1)


def test_failed_attempts_release_their_connection() -> None:
    pool = ConnectionPool(size=2)
    worker = SyncWorker(FlakyUpstream(3), OrderStore(), pool=pool, sleep=lambda s: None)
    assert worker.run_once(7) == 1
    assert pool.in_use == 0
