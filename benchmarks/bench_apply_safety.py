"""What issue 12's write and apply protections cost (items 1 and 7).

1. The link-refusing writer (`workspace/safefs.write_file`: every directory opened with O_NOFOLLOW
   from the root, an exclusive randomly named temporary file, fchmod, rename in the opened directory)
   against the plain write it replaced (`Path.write_bytes` of `.<name>.route-agent-tmp`, chmod,
   `os.replace`), for N files of 4 KB three directories deep.
2. `route-agent apply`'s check that the stored run is what was verified (paths, the patch applied
   again to the stored base texts, the SHA-256 digest) against the rest of `apply_to_user_tree`, for a
   run touching N files.

    .venv/bin/python benchmarks/bench_apply_safety.py [--files N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import stat
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from route_agent.workspace import worktree as wt
from route_agent.workspace.git import open_repo
from route_agent.workspace.safefs import write_file


def plain_write(root: Path, rel: str, data: bytes) -> None:
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.route-agent-tmp")
    tmp.write_bytes(data)
    if target.exists():
        os.chmod(tmp, stat.S_IMODE(os.lstat(target).st_mode))
    os.replace(tmp, target)


def time_writes(files: int, repeat: int) -> tuple[float, float]:
    data = b"x" * 4096
    rels = [f"a/b/c/f{n}.txt" for n in range(files)]
    out: dict[str, list[float]] = {"plain": [], "safe": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            for name, write in (("plain", plain_write), ("safe", write_file)):
                root = Path(tmp) / name
                root.mkdir(exist_ok=True)
                started = time.perf_counter()
                for rel in rels:
                    write(root, rel, data)
                out[name].append(time.perf_counter() - started)
    return statistics.median(out["plain"]), statistics.median(out["safe"])


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=b@example.com", "-c", "user.name=B", "-C", str(root), *args],
                          check=True, capture_output=True, text=True).stdout


def time_apply(files: int, repeat: int) -> tuple[float, float]:
    check_s: list[float] = []
    total_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ROUTE_AGENT_STATE_DIR"] = str(Path(tmp) / "state")
        root = Path(tmp) / "repo"
        (root / "src").mkdir(parents=True)
        for n in range(files):
            (root / "src" / f"m{n}.py").write_text("".join(f"line_{i} = {i}\n" for i in range(200)))
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
        git(root, "add", ".")
        git(root, "commit", "-qm", "base")
        base = git(root, "rev-parse", "HEAD").strip()
        hunk = "@@ -100,3 +100,3 @@\n line_99 = 99\n-line_100 = 100\n+line_100 = 1000\n line_101 = 101\n"
        diff = "".join(f"diff --git a/src/m{n}.py b/src/m{n}.py\n--- a/src/m{n}.py\n+++ b/src/m{n}.py\n{hunk}" for n in range(files))
        repo = open_repo(root)
        original = wt._verified_images
        for r in range(repeat):
            wt.save_run(repo, f"bench{r}", diff, base)
            spent: list[float] = []

            def timed(*args: object, _spent: list[float] = spent) -> object:
                started = time.perf_counter()
                try:
                    return original(*args)  # type: ignore[arg-type]
                finally:
                    _spent.append(time.perf_counter() - started)

            wt._verified_images = timed  # type: ignore[assignment]
            started = time.perf_counter()
            result = wt.apply_to_user_tree(repo, f"bench{r}")
            total_s.append(time.perf_counter() - started)
            wt._verified_images = original
            assert result.applied, result.message
            check_s.append(spent[0])
            git(root, "checkout", "-q", "--", ".")
    return statistics.median(check_s), statistics.median(total_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    plain, safe = time_writes(args.files, args.repeat)
    print(f"write {args.files} files of 4 KB: plain {plain * 1000:.1f} ms, link-refusing {safe * 1000:.1f} ms "
          f"(ratio {safe / plain:.2f}x, {(safe - plain) / args.files * 1e6:.0f} us more per file)")
    check, total = time_apply(min(args.files, 50), args.repeat)
    print(f"apply a run of {min(args.files, 50)} files: verified-run check {check * 1000:.1f} ms of {total * 1000:.1f} ms "
          f"({check / total:.0%} of apply)")


if __name__ == "__main__":
    main()
