"""The one way tests wait for something: poll a predicate until it holds, with a hang guard.

    wait_until(predicate, timeout=30.0)        # synchronous
    await wait_for(predicate, timeout=20.0)    # in async tests; a coroutine's result is awaited

Both return the predicate's first truthy value and raise AssertionError after `timeout` seconds.
The timeout only catches a real hang: it is never a speed requirement (figures go to benchmarks/).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


async def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "the condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)
