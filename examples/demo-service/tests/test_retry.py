from demo_service.retry import Backoff


def test_delay_doubles() -> None:
    backoff = Backoff(base_s=0.5)
    assert [backoff.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
