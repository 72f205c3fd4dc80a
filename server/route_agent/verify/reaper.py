"""The supervisor every check runs under: a child subreaper that no check process can leave.

A check's grandchild can shed the process group (`setsid`) and the environment marker (`env -i`);
it cannot leave its ancestry. This script makes itself a child subreaper
(`prctl(PR_SET_CHILD_SUBREAPER)`), so every orphan among the check's descendants is re-parented to
it instead of to init, starts the check, and when the check ends (or on SIGTERM at a timeout or a
cancel) kills every descendant still alive and reports them: `run_one` turns each one into a
finding. In the sandbox it runs inside bubblewrap's PID namespace, which also ends with it.

It runs as `python -I -S -c <this file's text> FD -- argv...` (isolated mode, no site: no PYTHONPATH,
no .pth file, no current directory on the path, so a repository's `sitecustomize.py` cannot replace
it, and it starts faster) and
writes one JSON object to file descriptor FD when it is done. Standard library only.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
MAX_SHOWN = 20


def source() -> str:
    """This file's text, run with `python -I -c`."""
    return Path(__file__).read_text("utf-8")


class _Terminated(Exception):
    pass


def proc_files(name: str) -> list[tuple[int, bytes]]:
    """(pid, the bytes of /proc/PID/`name`) for every process whose file could be read: processes
    come and go while /proc is read, so one that is gone (or not ours to read) is passed over. An
    unlistable /proc raises OSError. Also used by checks.kill_marked (this file stays standard library only)."""
    out: list[tuple[int, bytes]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/{name}", "rb") as handle:
                out.append((int(entry), handle.read()))
        except OSError:
            continue
    return out


def _children() -> dict[int, list[tuple[int, bytes]]]:
    out: dict[int, list[tuple[int, bytes]]] = {}
    for pid, data in proc_files("stat"):
        fields = data[data.rfind(b")") + 2:].split()  # the command name may hold spaces and parentheses
        if len(fields) > 1:
            out.setdefault(int(fields[1]), []).append((pid, fields[0]))
    return out


def _descendants(root: int) -> list[tuple[int, bytes]]:
    children = _children()
    found: list[tuple[int, bytes]] = []
    stack = [root]
    while stack:
        for pid, state in children.get(stack.pop(), []):
            found.append((pid, state))
            stack.append(pid)
    return found


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read(400)
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()[:200] or "?"


def _reap() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_descendants() -> list[dict[str, object]]:
    """SIGKILL every live descendant until none is left; returns the ones found (pid, command)."""
    me = os.getpid()
    seen: dict[int, dict[str, object]] = {}
    for _ in range(200):
        alive = [pid for pid, state in _descendants(me) if state != b"Z"]
        if not alive:
            break
        for pid in alive:
            if pid not in seen:
                seen[pid] = {"pid": pid, "command": _command(pid)}
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _reap()
        time.sleep(0.01)
    _reap()
    return list(seen.values())


def main(args: list[str]) -> int:
    fd = int(args[0])
    argv = args[2:] if len(args) > 1 and args[1] == "--" else args[1:]
    report: dict[str, object] = {"subreaper": False, "survivors": [], "terminated": False}
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        report["subreaper"] = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        pass

    def on_term(_signum: int, _frame: object) -> None:
        raise _Terminated

    signal.signal(signal.SIGTERM, on_term)
    code = 127
    try:
        try:
            child = subprocess.Popen(argv, close_fds=True)
        except OSError as exc:
            print(f"cannot start {argv[0] if argv else '(nothing)'!r}: {exc.strerror or exc}", file=sys.stderr)
            return code
        try:
            returned = child.wait()
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the check is over: finish the sweep
            code = returned if returned >= 0 else 128 - returned
            report["survivors"] = kill_descendants()
        except _Terminated:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            report["terminated"] = True
            report["survivors"] = kill_descendants()
            code = 128 + signal.SIGTERM
        return code
    finally:
        try:
            os.write(fd, json.dumps(report).encode("utf-8")[:60000])
            os.close(fd)
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
