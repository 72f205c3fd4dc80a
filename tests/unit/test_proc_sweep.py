"""The /proc reading the check runner's sweep (checks.kill_marked) and the reaper share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

from route_agent.verify import reaper
from route_agent.verify.checks import MARKER_ENV, kill_marked


def test_proc_files_reads_every_live_process_file_including_ours() -> None:
    stats = dict(reaper.proc_files("stat"))
    assert stats[os.getpid()].startswith(f"{os.getpid()} (".encode())
    assert stats[os.getppid()].startswith(f"{os.getppid()} (".encode())


def test_kill_marked_kills_only_the_processes_carrying_the_marker() -> None:
    marker = uuid.uuid4().hex
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    marked = subprocess.Popen(sleeper, env={**os.environ, MARKER_ENV: marker})
    other = subprocess.Popen(sleeper, env={**os.environ, MARKER_ENV: "someone-else"})
    try:
        # Popen returns once the child has exec'd, so its environment already carries the marker.
        assert kill_marked(marker, signal.SIGKILL) == 1
        assert marked.wait(timeout=30) == -signal.SIGKILL
        assert other.poll() is None
        assert kill_marked(marker, signal.SIGKILL) == 0
    finally:
        for proc in (marked, other):
            proc.kill()
            proc.wait(timeout=30)
