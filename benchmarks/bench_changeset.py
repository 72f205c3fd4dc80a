"""Change-set refresh on a ~34k-file repository, as a ratio of `git status --porcelain=v1 -z`.

The repository is built once under benchmarks/.cache (copies of the Python standard library until
34,000 files, one commit) and 20 tracked files are modified before measuring. Both commands run in
the same loop, interleaved and alternating which goes first, so machine noise hits both alike; the
figures are medians. Target: collect_change_set <= 1.2x git status.

    .venv/bin/python benchmarks/bench_changeset.py [--repeats 31] [--files 34000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from route_agent.workspace.git import HARDENING, collect_change_set, git_env, open_repo

CACHE = Path(__file__).resolve().parent / ".cache"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}
MODIFIED = 20


def stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if not path.is_file() or path.is_symlink():
            continue
        if "__pycache__" in rel or rel[0] in ("site-packages", "dist-packages") or rel[0].startswith("config-"):
            continue
        if path.stat().st_size > 200_000:
            continue
        found.append(path)
    return found


def git(root: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    return subprocess.run(["git", *HARDENING, *args], cwd=root, env=env, check=True, capture_output=True,
                          text=True).stdout


def build(target_files: int) -> Path:
    repo = CACHE / f"stdlib-{target_files}"
    ready = repo / ".git" / "bench-ready"
    if ready.exists():
        return repo
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    sources = stdlib_files()
    base = Path(sysconfig.get_paths()["stdlib"])
    print(f"building {repo} from {len(sources)} stdlib files ...", file=sys.stderr)
    count = 0
    copy = 0
    while count < target_files:
        for src in sources:
            if count >= target_files:
                break
            dst = repo / f"copy{copy:02d}" / src.relative_to(base)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            count += 1
        copy += 1
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "stdlib copies")
    ready.write_text("ok\n")
    return repo


def modify(repo: Path) -> list[str]:
    tracked = [p for p in git(repo, "ls-files", "-z").split("\0") if p.endswith(".py")]
    step = max(1, len(tracked) // MODIFIED)
    chosen = tracked[::step][:MODIFIED]
    git(repo, "checkout", "-q", "--", ".")
    for rel in chosen:
        with (repo / rel).open("a", encoding="utf-8") as handle:
            handle.write("\n\ndef bench_added_function():\n    return 42\n")
    return chosen


def time_git_status(repo: Path) -> float:
    argv = ["git", "status", "--porcelain=v1", "-z"]
    start = time.perf_counter()
    subprocess.run(argv, cwd=repo, capture_output=True, check=True, env=git_env())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--files", type=int, default=34_000)
    args = parser.parse_args()
    repo_path = build(args.files)
    chosen = modify(repo_path)
    repo = open_repo(repo_path)
    files = int(git(repo_path, "ls-files", "-z").count("\0"))

    change_set = collect_change_set(repo)
    assert len(change_set.files) == len(chosen), (len(change_set.files), len(chosen))

    def ours() -> float:
        start = time.perf_counter()
        collect_change_set(repo)
        return time.perf_counter() - start

    for _ in range(3):  # warm the page cache and the index for both
        time_git_status(repo_path)
        ours()
    status_times: list[float] = []
    ours_times: list[float] = []
    for i in range(args.repeats):
        if i % 2:
            status_times.append(time_git_status(repo_path))
            ours_times.append(ours())
        else:
            ours_times.append(ours())
            status_times.append(time_git_status(repo_path))
    status_median = statistics.median(status_times)
    ours_median = statistics.median(ours_times)
    ratios = sorted(o / s for o, s in zip(ours_times, status_times, strict=True))
    print(f"repository: {files} tracked files, {len(chosen)} modified; {args.repeats} interleaved repeats")
    print(f"git status --porcelain=v1 -z   median {status_median * 1000:7.1f} ms  (1.00x, the floor)")
    print(f"collect_change_set             median {ours_median * 1000:7.1f} ms  ({ours_median / status_median:.2f}x)")
    print(f"per-pair ratio: p25 {ratios[len(ratios) // 4]:.2f}x  median {statistics.median(ratios):.2f}x  "
          f"p75 {ratios[3 * len(ratios) // 4]:.2f}x   target <= 1.20x")


if __name__ == "__main__":
    main()
