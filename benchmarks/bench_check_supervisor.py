"""What the check supervisor (verify/reaper.py, issue 12 item 8) adds to a check's wall time.

Every check runs under a child subreaper that kills and reports any descendant left behind. This
prints, side by side in one run, the median wall time of a trivial check (`python -c pass`) started
directly and under the supervisor (the same argv run_one builds), unsandboxed and in bubblewrap,
and of a whole `run_one` (environment, supervisor, output capture, marker sweep) for reference.

    .venv/bin/python benchmarks/bench_check_supervisor.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from route_agent.policy.models import Check
from route_agent.verify import reaper
from route_agent.verify.checks import probe_sandbox, run_one, sandbox_argv


def direct(argv: list[str], cwd: Path, fd: int | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
                   pass_fds=(fd,) if fd is not None else ())
    return time.perf_counter() - started


def under_supervisor(argv: list[str], cwd: Path, sandbox_exe: str | None) -> float:
    read_fd, write_fd = os.pipe()
    try:
        wrapped = [sys.executable, "-I", "-S", "-c", reaper.source(), str(write_fd), "--", *argv]
        return direct(sandbox_argv(sandbox_exe, cwd, wrapped) if sandbox_exe else wrapped, cwd, write_fd)
    finally:
        os.close(read_fd)
        os.close(write_fd)


def supervised(check: Check, cwd: Path, sandboxed: bool) -> float:
    sandbox = probe_sandbox() if sandboxed else None
    started = time.perf_counter()
    asyncio.run(run_one(check, cwd, environ=dict(os.environ), deadline=time.monotonic() + 60, max_output_bytes=1 << 20,
                        sandbox=sandbox))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    argv = [sys.executable, "-c", "pass"]
    check = Check(name="noop", run=argv)
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        modes = [("unsandboxed", False)]
        info = probe_sandbox()
        if info.available and info.executable:
            modes.append(("sandboxed", True))
        for label, sandboxed in modes:
            exe = info.executable if sandboxed else None
            base_argv = sandbox_argv(exe, cwd, argv) if exe else argv
            plain, wrapped, whole = [], [], []
            for _ in range(args.runs):  # interleaved, so load changes hit both alike
                plain.append(direct(base_argv, cwd))
                wrapped.append(under_supervisor(argv, cwd, exe))
                whole.append(supervised(check, cwd, sandboxed))
            p, w, r = statistics.median(plain), statistics.median(wrapped), statistics.median(whole)
            print(f"{label}: direct {p * 1000:.1f} ms, under the supervisor {w * 1000:.1f} ms ({w / p:.2f}x, "
                  f"+{(w - p) * 1000:.1f} ms per check); whole run_one {r * 1000:.1f} ms")


if __name__ == "__main__":
    main()
