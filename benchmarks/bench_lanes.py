"""Lane client overhead and event-loop lag, against the loopback fake model server.

    .venv/bin/python benchmarks/bench_lanes.py [--requests 300] [--concurrency 50] [--rounds 4]

1. Overhead: our `LaneClient.complete` (SSE parsing, completeness rules, budgets, retry context)
   against a bare `httpx` streaming POST of the same body that just reads every byte, interleaved
   in the same run on the same server; prints the medians and their ratio (target <= 1.1x).
2. Event-loop lag: a 1 ms ticker measures how late it wakes while `--concurrency` lane calls run
   at once (`--rounds` times); prints p50/p99/max lag, and the same ticker on an idle loop.

The server runs in a separate process so that its threads do not compete for this one's GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "server"))

from route_agent.lanes import LaneClient  # noqa: E402
from route_agent.policy.models import Budgets, Models, ModelSpec, Policy  # noqa: E402

MESSAGES = [{"role": "system", "content": "You write diffs."}, {"role": "user", "content": "Fix the greeting " * 20}]


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fakeserver" / "server.py")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().strip())
    return proc, f"http://127.0.0.1:{port}/v1"


def policy(base_url: str) -> Policy:
    spec = ModelSpec(provider="openai-compatible", model="bench", base_url=base_url, api_key_env="BENCH_KEY",
                     price_per_mtok={"input": 1.0, "output": 2.0})
    return Policy(models=Models(fast=spec, strong=spec), budgets=Budgets(per_task_usd=None, per_day_usd=None))


async def overhead(base_url: str, requests: int) -> tuple[float, float]:
    client = LaneClient(policy(base_url), environ={"BENCH_KEY": "bench-key"})
    bare = httpx.AsyncClient()
    body = json.dumps({"model": "bench", "messages": MESSAGES, "stream": True, "max_tokens": 4096, "temperature": 0.0,
                       "stream_options": {"include_usage": True}}).encode()
    headers = {"Authorization": "Bearer bench-key", "Content-Type": "application/json", "Accept": "text/event-stream"}

    async def bare_call() -> None:
        async with bare.stream("POST", base_url + "/chat/completions", content=body, headers=headers) as response:
            async for _ in response.aiter_bytes():
                pass

    async def ours() -> None:
        await client.complete("fast", MESSAGES)

    for _ in range(20):
        await bare_call()
        await ours()
    bare_times: list[float] = []
    our_times: list[float] = []
    for i in range(requests):
        pair = ((bare_call, bare_times), (ours, our_times))
        for fn, sink in pair if i % 2 == 0 else reversed(pair):
            started = time.perf_counter()
            await fn()
            sink.append(time.perf_counter() - started)
    await client.aclose()
    await bare.aclose()
    return statistics.median(bare_times), statistics.median(our_times)


async def ticker(stop: asyncio.Event, lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        await asyncio.sleep(0.001)
        lags.append(loop.time() - started - 0.001)


async def lag(base_url: str, concurrency: int, rounds: int) -> tuple[list[float], list[float], float]:
    idle: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(ticker(stop, idle))
    await asyncio.sleep(1.0)
    stop.set()
    await task
    client = LaneClient(policy(base_url), environ={"BENCH_KEY": "bench-key"})
    await asyncio.gather(*(client.complete("fast", MESSAGES) for _ in range(concurrency)))  # warm the pool
    busy: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(ticker(stop, busy))
    started = time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(client.complete("fast", MESSAGES) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    await client.aclose()
    return idle, busy, elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    proc, base_url = start_server()
    try:
        bare, ours = asyncio.run(overhead(base_url, args.requests))
        print(f"overhead: bare httpx median {bare * 1e3:.3f} ms, LaneClient median {ours * 1e3:.3f} ms, "
              f"ratio {ours / bare:.3f}x (target <= 1.1x; {args.requests} interleaved pairs)")
        idle, busy, elapsed = asyncio.run(lag(base_url, args.concurrency, args.rounds))
        calls = args.concurrency * args.rounds
        print(f"event-loop lag, idle: p50 {pct(idle, 0.5) * 1e3:.3f} ms, p99 {pct(idle, 0.99) * 1e3:.3f} ms, "
              f"max {max(idle) * 1e3:.3f} ms")
        print(f"event-loop lag, {args.concurrency} concurrent lane calls x {args.rounds} rounds ({calls} calls in "
              f"{elapsed:.2f} s): p50 {pct(busy, 0.5) * 1e3:.3f} ms, p99 {pct(busy, 0.99) * 1e3:.3f} ms, "
              f"max {max(busy) * 1e3:.3f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=5)


if __name__ == "__main__":
    main()
