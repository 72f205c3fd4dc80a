"""Signals and score for a 200-file change set (git excluded), and policy load: cold, cached, changed.

Targets: signals + score <= 5 ms median; policy load <= 1 ms, and a cached load re-reads nothing
until the file changes. Figures are medians over many repeats, with the floors they compare to
(a bare YAML parse of the same file, one `os.stat`) measured in the same run.

    .venv/bin/python benchmarks/bench_scoring.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from route_agent.policy import PolicyCache, default_policy_text
from route_agent.routing import Router
from route_agent.signals import ChangedFile, ChangeSet

BRIEF = "fix the retry leak in the sync worker; the nightly job stalls after upstream 503s"


def synthetic_change_set(files: int = 200) -> ChangeSet:
    """A realistic mix: code edits of a few lines, new files, docs, tests, a manifest, a deletion."""
    out: list[ChangedFile] = []
    for i in range(files):
        kind = i % 10
        if kind < 6:
            added = tuple((10 + j, f"    value_{j} = compute(item, retries={j})  # adjust") for j in range(8))
            removed = tuple((10 + j, f"    value_{j} = compute(item)") for j in range(6))
            out.append(ChangedFile(f"src/pkg{i % 17}/module_{i}.py", "modified", added=added, removed=removed,
                                   old_mode="100644", new_mode="100644"))
        elif kind == 6:
            added = tuple((j + 1, f"def helper_{j}(x):\n    return x * {j}") for j in range(40))
            out.append(ChangedFile(f"src/new/feature_{i}.py", "untracked", added=added, new_mode="100644"))
        elif kind == 7:
            out.append(ChangedFile(f"docs/page_{i}.md", "modified", added=((3, "Some clarified prose."),),
                                   removed=((3, "Some prose."),), old_mode="100644", new_mode="100644"))
        elif kind == 8:
            added = tuple((20 + j, f"    assert run(case_{j}) == expected_{j}") for j in range(12))
            out.append(ChangedFile(f"tests/test_mod_{i}.py", "modified", added=added, old_mode="100644",
                                   new_mode="100644"))
        else:
            out.append(ChangedFile(f"web/app_{i}/package.json", "modified", added=((5, '    "left-pad": "1.3.0",'),),
                                   old_mode="100644", new_mode="100644"))
    return ChangeSet(files=tuple(out))


def median_us(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    n = args.repeats

    policy = PolicyCache().load().policy
    change_set = synthetic_change_set()
    lines = sum(len(f.added) + len(f.removed) for f in change_set.files)

    def cold_router_score() -> None:
        Router(policy).classify(change_set, BRIEF)

    router = Router(policy)

    def warm_router_score() -> None:
        router.classify(change_set, BRIEF)

    warm = median_us(warm_router_score, n)
    cold = median_us(cold_router_score, max(20, n // 10))
    print(f"signals + score, {len(change_set.files)} files / {lines} changed lines (git excluded):")
    print(f"  reused Router (path classes cached) median {warm / 1000:6.2f} ms   target <= 5 ms  "
          f"({warm / 5000:.2f}x the target)")
    print(f"  new Router each time                 median {cold / 1000:6.2f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.yaml"
        path.write_text(default_policy_text(), encoding="utf-8")  # a full ~95-line policy as the user layer
        text = path.read_text("utf-8")
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        floor_parse = median_us(lambda: yaml.load(text, Loader=loader), n)
        stat_floor = median_us(lambda: os.stat(path), n)

        def cold_load() -> None:
            PolicyCache().load(path)

        import route_agent.policy as policy_pkg

        def first_load_in_process() -> None:
            policy_pkg._default_layer.cache_clear()  # the shipped default parsed again too
            PolicyCache().load(path)

        cache = PolicyCache()
        cache.load(path)
        cold_us = median_us(cold_load, n)
        first_us = median_us(first_load_in_process, n)
        cached_us = median_us(lambda: cache.load(path), n * 10)

        reads = 0
        real_read = policy_pkg.read_layer

        def counting(p: Path) -> object:
            nonlocal reads
            reads += 1
            return real_read(p)

        policy_pkg.read_layer = counting  # type: ignore[assignment]
        try:
            for _ in range(100):
                cache.load(path)
            unchanged_reads = reads
            path.write_text(text + "\n# edited\n", encoding="utf-8")
            cache.load(path)
            changed_reads = reads - unchanged_reads
        finally:
            policy_pkg.read_layer = real_read

    print(f"policy load ({len(text.splitlines())}-line file layered over the default):")
    print(f"  first load in a process (both files) median {first_us / 1000:6.3f} ms")
    print(f"  file changed (parse + merge + valid.) median {cold_us / 1000:6.3f} ms   target <= 1 ms  "
          f"({cold_us / 1000:.2f}x the target; {cold_us / floor_parse:.1f}x a bare CSafeLoader parse "
          f"of {floor_parse / 1000:.3f} ms)")
    print(f"  cached (file unchanged)              median {cached_us:6.1f} µs   ({cached_us / stat_floor:.1f}x one os.stat "
          f"of {stat_floor:.1f} µs)")
    print(f"  re-reads: {unchanged_reads} in 100 loads of an unchanged file, {changed_reads} after an edit")


if __name__ == "__main__":
    main()
