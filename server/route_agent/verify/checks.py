"""Run the policy's checks in a worktree, as safely as this machine allows.

- argv only, never a shell; stdin closed; an allowlisted environment (no keys or tokens);
- each check in its own session and process group, with a per-check timeout and a run deadline;
  on timeout SIGTERM the group, then SIGKILL after 2 s. A grandchild that calls `setsid()` leaves
  the group, so every check also carries a marker in its environment and we kill every process
  that still carries it (and, under bubblewrap, the PID namespace dies with the check);
- output capped: the head and tail are kept, and a check that prints past the cap is killed;
- optional bubblewrap sandbox: read-only root, writable worktree, no network, own PID namespace.
  Probed once; never silently skipped when the policy says `sandbox: required`;
- the user's installed-dependency folders (node_modules, workspace/dependencies.py) are visible in the
  worktree, read-only: bound over the worktree in the sandbox, linked without it;
- without the sandbox, the main repository (hooks, config, refs, index, tracked files) is compared
  before and after and any change is reported loudly as an integrity finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from route_agent.policy.models import Check
from route_agent.verify import reaper
from route_agent.verify.findings import Finding, from_exit_code, from_go_test_json, from_junit, from_problem_matcher, from_sarif
from route_agent.workspace.dependencies import NO_DEPENDENCY_DIRS, DependencyDirs, bwrap_binds, link_dependency_dirs, unlink_dependency_dirs

KEEP_BYTES = 32 * 1024
KILL_GRACE_S = 2.0
MARKER_ENV = "ROUTE_AGENT_CHECK_ID"

_ENV_ALLOW = {
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "SHELL",
    "TERM",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "JAVA_HOME",
    "GOPATH",
    "GOROOT",
    "GOCACHE",
    "GOFLAGS",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "NODE_PATH",
    "NVM_DIR",
    "PYTHONPATH",
    "PYTHONHASHSEED",
    "PIP_INDEX_URL",
    "UV_CACHE_DIR",
    "XDG_CACHE_HOME",
    "CI",
}
_ENV_DENY_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_PASSWD", "_CREDENTIALS", "_PAT")
_ENV_DENY_PREFIXES = ("AWS_", "GITHUB_", "GH_", "OPENAI_", "OPENROUTER_", "ANTHROPIC_", "AZURE_", "GOOGLE_", "GCP_", "NPM_", "ROUTE_AGENT_")


# A URL with a user (`https://user:pass@host`, `https://__token__:pypi-...@host`) or a credential in
# its query (`?token=...`): PIP_INDEX_URL and friends often carry one.
_URL_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s@]+@")
_URL_CREDENTIAL_PARAM = re.compile(r"[?&;](?:[A-Za-z0-9_.-]*(?:token|key|secret|password|passwd|auth|sig|signature|credential)s?)=[^&\s]",
                                   re.IGNORECASE)


def carries_credential(value: str) -> bool:
    """True when an environment value holds a URL with a user and password or a token in it."""
    return "://" in value and bool(_URL_USERINFO.search(value) or _URL_CREDENTIAL_PARAM.search(value))


def check_environment(environ: Mapping[str, str], marker: str) -> dict[str, str]:
    """The environment a check sees: an allowlist, with anything key-like removed even if allowed."""
    env: dict[str, str] = {}
    for name, value in environ.items():
        upper = name.upper()
        if name not in _ENV_ALLOW and not upper.startswith("LC_"):
            continue
        if upper.endswith(_ENV_DENY_SUFFIXES) or upper.startswith(_ENV_DENY_PREFIXES) or upper == "SSH_AUTH_SOCK":
            continue
        if carries_credential(value):
            continue
        env[name] = value
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["TERM"] = "dumb"
    env["NO_COLOR"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env[MARKER_ENV] = marker
    return env


@dataclass(frozen=True)
class SandboxInfo:
    available: bool
    reason: str
    executable: str | None = None


_SANDBOX_CACHE: dict[str, SandboxInfo] = {}


def probe_sandbox() -> SandboxInfo:
    """Whether bubblewrap can run a process here with the isolation we ask for (cached)."""
    cached = _SANDBOX_CACHE.get("bwrap")
    if cached is not None:
        return cached
    exe = shutil.which("bwrap")
    if exe is None:
        info = SandboxInfo(False, "bubblewrap (bwrap) is not installed; install the Debian package `bubblewrap`")
    else:
        try:
            proc = subprocess.run(
                [
                    exe,
                    "--ro-bind",
                    "/",
                    "/",
                    "--dev",
                    "/dev",
                    "--proc",
                    "/proc",
                    "--unshare-pid",
                    "--unshare-net",
                    "--die-with-parent",
                    "--new-session",
                    "--",
                    "true",
                ],
                capture_output=True,
                timeout=10,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            ok = proc.returncode == 0
            reason = (
                "bubblewrap works"
                if ok
                else f"bubblewrap cannot create namespaces here: {proc.stderr.decode('utf-8', 'replace').strip()[:200]}"
            )
            info = SandboxInfo(ok, reason, exe)
        except (OSError, subprocess.TimeoutExpired) as exc:
            info = SandboxInfo(False, f"bubblewrap failed to start: {exc}", exe)
    _SANDBOX_CACHE["bwrap"] = info
    return info


def sandbox_argv(bwrap: str, worktree: Path, argv: Sequence[str], extra_ro: Sequence[Path] = (), scratch: Path | None = None,
                 share_network: bool = False, binds: Sequence[str] = ()) -> list[str]:
    """Read-only root, the worktree and a private scratch directory (the check's TMPDIR) writable.
    `share_network` keeps the host's network (for an external agent that must reach its model).
    `binds` are more bubblewrap mount arguments laid over the worktree (read-only dependency folders).

    /tmp is not replaced by an empty tmpfs: the interpreter or virtual environment a check runs with
    may live there (CI clones often do), and it must stay visible; it stays read-only like the rest.
    """
    wt = str(worktree)
    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--bind", wt, wt]
    if scratch is not None:
        args += ["--bind", str(scratch), str(scratch)]
    git_marker = worktree / ".git"
    if git_marker.is_dir():
        args += ["--ro-bind", str(git_marker), str(git_marker)]
    for path in extra_ro:
        args += ["--ro-bind", str(path), str(path)]
    args += binds
    args += [
        "--unshare-pid",
        *(() if share_network else ("--unshare-net",)),
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--new-session",
        "--chdir",
        wt,
        "--",
        *argv,
    ]
    return args


@dataclass
class CheckRun:
    name: str
    argv: list[str]
    kind: str
    exit_code: int | None = None
    timed_out: bool = False
    output_exceeded: bool = False
    cancelled: bool = False
    error: str | None = None
    duration_s: float = 0.0
    total_bytes: int = 0
    head: str = ""
    tail: str = ""
    sandboxed: bool = False
    findings: list[Finding] = field(default_factory=list)
    no_tests: bool = False
    """A test check that ran no test (pytest exit 5, `no test files`, `running 0 tests`): a weak
    check, never a pass. It does not fail the attempt; the attempt is `unverified` (escalates)."""

    @property
    def passed(self) -> bool:
        return (self.exit_code == 0 or self.no_tests) and not (self.timed_out or self.output_exceeded or self.cancelled or self.error)

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        if self.timed_out:
            return "timeout"
        if self.output_exceeded:
            return "output-exceeded"
        if self.cancelled:
            return "cancelled"
        if self.no_tests:
            return "no-tests"
        return "pass" if self.exit_code == 0 else "fail"

    @property
    def output_excerpt(self) -> str:
        if self.total_bytes <= 2 * KEEP_BYTES:
            return self.head + self.tail
        return self.head + f"\n… [{self.total_bytes - 2 * KEEP_BYTES} bytes omitted] …\n" + self.tail


class SandboxRequired(Exception):
    """The policy requires the sandbox and it cannot run here."""


@dataclass
class ChecksReport:
    runs: list[CheckRun]
    sandboxed: bool
    sandbox_note: str
    integrity: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.runs) and not self.integrity

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.runs for f in r.findings] + list(self.integrity)


def kill_marked(marker: str, sig: int) -> int:
    """Send `sig` to every process whose environment carries the check's marker."""
    needle = f"{MARKER_ENV}={marker}".encode()
    killed = 0
    me = os.getpid()
    try:
        environs = reaper.proc_files("environ")
    except OSError:
        return 0
    for pid, data in environs:
        if pid != me and needle in data.split(b"\0"):
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
                killed += 1
    return killed


async def _terminate(proc: asyncio.subprocess.Process, marker: str) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    kill_marked(marker, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), KILL_GRACE_S)
    except TimeoutError:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    kill_marked(marker, signal.SIGKILL)
    # Drain what is left so the pipe transport closes with the process, not at interpreter exit.
    with contextlib.suppress(TimeoutError, OSError, ValueError):
        await asyncio.wait_for(proc.communicate(), KILL_GRACE_S)


async def run_one(
    check: Check, worktree: Path, *, environ: Mapping[str, str], deadline: float, max_output_bytes: int, sandbox: SandboxInfo | None,
    scratch_dir: Path | None = None, extra_env: Mapping[str, str] | None = None, share_network: bool = False,
    supervise: bool = True, dependencies: DependencyDirs = NO_DEPENDENCY_DIRS,
) -> CheckRun:
    """Run one check. `scratch_dir` is a TMPDIR the caller owns and reuses (the agent loop's, one per
    attempt); otherwise one is made and removed. `extra_env` is added after the allowlist (an
    external agent's key under its `key_env`); `share_network` keeps the network in the sandbox
    (an external agent must reach its model), the filesystem stays confined. `supervise=False` skips
    the subreaper when the sandbox runs (the agent loop's commands: bubblewrap's PID namespace dies
    with the command, so nothing can outlive it, and a Python start per step would cost ~100 ms);
    without a sandbox the supervisor always runs. `dependencies` are bound read-only over the worktree
    in the sandbox; without it they are linked (the caller removes the links: `unlink_dependency_dirs`)."""
    run = CheckRun(name=check.name, argv=list(check.run), kind=check.kind, sandboxed=sandbox is not None)
    marker = uuid.uuid4().hex
    env = check_environment(environ, marker)
    if extra_env:
        env.update(extra_env)
    argv = list(check.run)
    if shutil.which(argv[0], path=env["PATH"]) is None and not Path(worktree, argv[0]).is_file():
        run.error = f"{argv[0]!r} was not found on PATH; install it or change the {check.name!r} check in the policy"
        run.findings = [Finding(check.name, run.error, "error", rule="not-found")]
        return run
    # Every check runs under the subreaper (reaper.py): no descendant can leave its ancestry.
    report = _ReportPipe()
    if supervise or sandbox is None or not sandbox.executable:
        argv = [sys.executable, "-I", "-S", "-c", reaper.source(), str(report.write_fd), "--", *argv]
    scratch: Path | None = None
    if sandbox is not None and sandbox.executable:
        scratch = scratch_dir or Path(tempfile.mkdtemp(prefix="route-agent-check-"))
        env.update(TMPDIR=str(scratch), TMP=str(scratch), TEMP=str(scratch))
        # The root is read-only in the sandbox: build caches (go's, and any tool that follows XDG) go to the scratch dir.
        env.update(GOCACHE=str(scratch / "go-build"), XDG_CACHE_HOME=str(scratch / "cache"))
        argv = sandbox_argv(sandbox.executable, worktree, argv, scratch=scratch, share_network=share_network,
                            binds=bwrap_binds(dependencies, worktree))
    else:
        link_dependency_dirs(dependencies, worktree)
        if scratch_dir is not None:
            env.update(TMPDIR=str(scratch_dir), TMP=str(scratch_dir), TEMP=str(scratch_dir))
    # Unsupervised only inside bubblewrap's PID namespace, which is gone once the command is: nothing
    # can carry the marker afterwards, so the /proc sweep (every process on the machine) is skipped.
    sweep = supervise or sandbox is None or not sandbox.executable
    try:
        return await _run_process(run, check, argv, worktree, env, marker, deadline, max_output_bytes, report, sweep)
    finally:
        report.close()
        if scratch is not None and scratch_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)


class _ReportPipe:
    """The pipe the supervisor writes its report to; each end is closed exactly once (a second
    close could hit another check's descriptor that reused the number)."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self._open = {self.read_fd, self.write_fd}

    def close_write(self) -> None:
        if self.write_fd in self._open:
            self._open.discard(self.write_fd)
            os.close(self.write_fd)

    def close(self) -> None:
        for fd in list(self._open):
            self._open.discard(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def read(self) -> dict[str, Any]:
        """The supervisor's JSON report, or {} when it wrote none (it was killed)."""
        if self.read_fd not in self._open:
            return {}
        os.set_blocking(self.read_fd, False)
        data = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(self.read_fd, 65536):
                data += chunk
        try:
            report = json.loads(data) if data else {}
        except ValueError:
            return {}
        return report if isinstance(report, dict) else {}


def _survivor_finding(check: Check, report: dict[str, Any], sandboxed: bool) -> Finding | None:
    survivors = [s for s in report.get("survivors") or () if isinstance(s, dict)]
    if not survivors or report.get("terminated"):
        return None  # a check killed at its timeout: its processes were killed with it, as the timeout finding says
    shown = "; ".join(f"pid {s.get('pid')}: {str(s.get('command'))[:120]}" for s in survivors[:5])
    more = f" (+{len(survivors) - 5} more)" if len(survivors) > 5 else ""
    where = "in the sandbox" if sandboxed else "outside any sandbox"
    return Finding(check.name, f"the check left {len(survivors)} process(es) running {where} after it exited, killed now: {shown}{more}",
                   "warning", rule="survivors")


async def _run_process(run: CheckRun, check: Check, argv: list[str], worktree: Path, env: dict[str, str], marker: str,  # noqa: PLR0915 (start, output pump, deadline and kill share the process's state)
                       deadline: float, max_output_bytes: int, report_pipe: _ReportPipe, sweep: bool = True) -> CheckRun:
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=worktree,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(report_pipe.write_fd,),
        )
    except OSError as exc:
        run.error = f"cannot start {argv[0]!r}: {exc.strerror or exc}"
        run.findings = [Finding(check.name, run.error, "error", rule="not-started")]
        return run
    report_pipe.close_write()  # only the supervisor holds the write end now
    head = bytearray()
    tail = bytearray()
    timeout = max(0.0, min(check.timeout_s, deadline - time.monotonic()))

    async def pump() -> None:
        assert proc.stdout is not None
        while True:
            chunk = await proc.stdout.read(65536)
            if not chunk:
                return
            run.total_bytes += len(chunk)
            room = KEEP_BYTES - len(head)
            if room > 0:
                head.extend(chunk[:room])
                chunk = chunk[room:]
            if chunk:
                tail.extend(chunk)
                if len(tail) > KEEP_BYTES:
                    del tail[: len(tail) - KEEP_BYTES]
            if run.total_bytes > max_output_bytes:
                run.output_exceeded = True
                return

    try:
        await asyncio.wait_for(pump(), timeout)
        if run.output_exceeded:
            await _terminate(proc, marker)
        else:
            remaining = max(0.05, min(check.timeout_s, deadline - time.monotonic()) - (time.monotonic() - started))
            await asyncio.wait_for(proc.wait(), remaining)
    except TimeoutError:
        run.timed_out = True
        await _terminate(proc, marker)
    except asyncio.CancelledError:
        run.cancelled = True
        await asyncio.shield(_terminate(proc, marker))
        raise
    finally:
        run.duration_s = time.monotonic() - started
        run.head = head.decode("utf-8", "replace")
        run.tail = tail.decode("utf-8", "replace")
        supervisor = report_pipe.read()
        survivors = _survivor_finding(check, supervisor, run.sandboxed)
        if survivors is not None:
            run.findings.append(survivors)
        elif not supervisor and not (run.timed_out or run.cancelled or run.output_exceeded):
            # Only a kill stops the supervisor from reporting: the check (or something it started) killed its parent.
            where = "" if run.sandboxed else "; processes it started may have escaped (the sandbox's PID namespace would have held them)"
            run.findings.append(Finding(check.name, f"the check's supervisor was killed before it could account for the check's "
                                        f"processes{where}", "error", rule="supervisor-killed"))
        # Descendants that outlived the check and its supervisor (which a check can kill) are killed too.
        if sweep and kill_marked(marker, signal.SIGKILL) and not run.timed_out:
            run.findings.append(
                Finding(check.name, "the check left processes running after it exited; they were killed", "warning", rule="orphans")
            )
    run.exit_code = proc.returncode
    run.no_tests = not (run.timed_out or run.output_exceeded) and ran_no_test(check, run.exit_code, run.output_excerpt)
    if run.no_tests:
        run.findings.append(Finding(check.name, f"{check.name} ran no test: a weak check, never a pass; the patch is unverified by tests",
                                    "warning", rule="no-tests"))
        return run
    run.findings.extend(_parse(check, run, worktree))
    return run


# What test runners print when they found nothing to run (pytest, jest, vitest, node --test, go, cargo, mocha).
_NO_TESTS_OUTPUT = re.compile(
    r"\bno tests? (?:files? )?(?:were )?(?:found|ran|collected)\b|\bcollected 0 items\b|\[no tests to run\]"
    r"|^\S*\s*tests 0\s*$|\b0 passing\b",
    re.IGNORECASE | re.MULTILINE)
_CARGO_RUNNING = re.compile(r"^running (\d+) tests?$", re.MULTILINE)


def ran_no_test(check: Check, exit_code: int | None, output: str) -> bool:
    """Whether a `tests` check ran no test at all (from its exit code and output only)."""
    if check.kind != "tests" or exit_code is None:
        return False
    tool = Path(check.run[0]).name
    if "pytest" in check.run and exit_code == 5:
        return True  # pytest: no tests were collected
    if exit_code != 0:
        return False
    if tool == "go" and "-json" in check.run:
        return '"Action":"run"' not in output
    if tool == "go":
        return "no test files" in output and "\nok " not in f"\n{output}" and not output.startswith("ok ")
    counts = [int(n) for n in _CARGO_RUNNING.findall(output)]
    if tool == "cargo" and counts:
        return not any(counts)
    return _NO_TESTS_OUTPUT.search(output) is not None


def _parse(check: Check, run: CheckRun, worktree: Path) -> list[Finding]:
    if run.timed_out or run.output_exceeded:
        note = "printed more than the output cap and was killed" if run.output_exceeded else None
        finding = from_exit_code(check.name, run.exit_code, run.tail, run.timed_out)
        if note:
            finding = Finding(check.name, f"{check.name} {note}.", "error", rule="output-exceeded")
        return [finding]
    report_text: bytes | None = None
    if check.report:
        report_path = (worktree / check.report).resolve()
        if report_path.is_relative_to(worktree.resolve()) and report_path.is_file() and report_path.stat().st_size < 64 * 1024 * 1024:
            report_text = report_path.read_bytes()
    output = run.output_excerpt
    findings: list[Finding] = []
    if check.parser == "junit" and (report_text or output.lstrip().startswith("<")):
        findings = from_junit(report_text or output.encode(), check.name, worktree)
    elif check.parser == "sarif":
        findings = from_sarif(report_text or output.encode(), check.name, worktree)
    elif check.parser == "go-test-json":
        findings = from_go_test_json(output, check.name, worktree)
    elif check.parser == "problem-matcher":
        findings = from_problem_matcher(output, check.name, worktree)
    if run.exit_code != 0 and not any(f.severity == "error" for f in findings):
        findings.append(from_exit_code(check.name, run.exit_code, run.tail or run.head, False))
    return findings


@dataclass
class RepoSnapshot:
    """What a check could tamper with in the user's repository: git's own files by their content,
    tracked files by their inode's status (see `_signature`)."""

    digests: dict[str, str]
    hashed: frozenset[str] = frozenset()
    """Tracked files whose content was hashed too (changed recently): hashed again in the next snapshot."""

    @classmethod
    def take(cls, root: Path, git_dir: Path, tracked_dirty: Sequence[str] = (), like: RepoSnapshot | None = None) -> RepoSnapshot:
        digests: dict[str, str] = {}
        for rel in ("config", "HEAD", "index", "packed-refs", "info/attributes", "info/exclude"):
            digests[f".git/{rel}"] = _digest(git_dir / rel)
        for sub in ("hooks", "refs"):
            base = git_dir / sub
            for dirpath, _dirnames, filenames in os.walk(base):
                for name in filenames:
                    full = Path(dirpath) / name
                    digests[f".git/{full.relative_to(git_dir).as_posix()}"] = _digest(full)
        recent = time.time_ns() - RACY_NS
        again = like.hashed if like is not None else frozenset()
        hashed: set[str] = set()
        for rel in tracked_dirty:
            digests[rel], read = _signature(root / rel, 0 if rel in again else recent)
            if read:
                hashed.add(rel)
        return cls(digests, frozenset(hashed))

    def changes(self, after: RepoSnapshot) -> list[str]:
        keys = set(self.digests) | set(after.digests)
        return sorted(k for k in keys if self.digests.get(k) != after.digests.get(k))


RACY_NS = 2_000_000_000
"""A file whose inode changed this recently is also hashed: a write within the same clock tick as
the user's own last change could leave its times as they were."""


def _signature(path: Path, recent_ns: int) -> tuple[str, bool]:
    """A tracked file's state without reading it (as git's index does), and whether it was read:
    any write, rename over, chmod or `utime` changes the inode's ctime, which a process cannot set
    back; a file changed since `recent_ns` is hashed too. Reading every tracked file twice per
    attempt cost seconds on a large repository."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing", False
    except OSError as exc:
        return f"error:{exc.errno}", False
    signature = f"{st.st_mode:o}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
    if st.st_ctime_ns >= recent_ns:
        return f"{signature}:{_digest(path)}", True
    return signature, False


def _digest(path: Path) -> str:
    try:
        if path.is_symlink():
            return "link:" + os.readlink(path)
        st = path.stat()
        if st.st_size > 64 * 1024 * 1024:
            return f"size:{st.st_size}:{st.st_mtime_ns}"
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"error:{exc.errno}"


def tracked_state(root: Path) -> list[str]:
    """Every tracked file's path (for the before/after comparison without a sandbox)."""
    from route_agent.workspace.git import run_git

    proc = run_git(root, ["ls-files", "-z"])
    return [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def sandbox_plan(sandbox_mode: str) -> tuple[SandboxInfo | None, str]:
    """(the sandbox, a note) when checks will run in it; (None, why not) otherwise. The note of an
    unsandboxed plan starts with "NOT sandboxed" and is shown on every such run."""
    if sandbox_mode == "off":
        return None, "NOT sandboxed: the sandbox is off (--sandbox off or verification.sandbox: off)"
    probe = probe_sandbox()
    if probe.available:
        return probe, "sandboxed with bubblewrap (read-only root, no network, own PID namespace)"
    return None, f"NOT sandboxed: {probe.reason}"


async def run_checks(
    checks: Sequence[Check],
    worktree: Path,
    *,
    main_root: Path,
    main_git_dir: Path,
    sandbox_mode: str = "auto",
    run_timeout_s: float = 1800.0,
    max_output_bytes: int = 8 * 1024 * 1024,
    environ: Mapping[str, str] | None = None,
    concurrency: int | None = None,
    on_done: Callable[[CheckRun], None] | None = None,
    dependencies: DependencyDirs = NO_DEPENDENCY_DIRS,
) -> ChecksReport:
    """Run `checks` in `worktree`, independent checks concurrently; see the module docstring.
    `dependencies` (installed folders of the user's repository) are visible to every check, read-only
    in the sandbox (the caller reports `dependencies.refused`)."""
    info, note = await asyncio.to_thread(sandbox_plan, sandbox_mode)  # a blocking probe the first time
    if info is None and sandbox_mode == "required":
        raise SandboxRequired(f"the policy requires the sandbox, but {note.removeprefix('NOT sandboxed: ')}; nothing was run")
    env = dict(os.environ if environ is None else environ)
    deadline = time.monotonic() + run_timeout_s
    before: RepoSnapshot | None = None
    files: list[str] = []
    if info is None:
        files = await asyncio.to_thread(tracked_state, main_root)
        before = await asyncio.to_thread(RepoSnapshot.take, main_root, main_git_dir, files)
    limit = asyncio.Semaphore(concurrency or max(1, min(4, os.cpu_count() or 1)))

    async def guarded(check: Check) -> CheckRun:
        async with limit:
            result = await run_one(check, worktree, environ=env, deadline=deadline, max_output_bytes=max_output_bytes, sandbox=info,
                                   dependencies=dependencies)
        if on_done is not None:
            on_done(result)
        return result

    try:
        runs = list(await asyncio.gather(*(guarded(c) for c in checks)))
    finally:
        if info is None:
            unlink_dependency_dirs(dependencies, worktree)  # no link of ours outlives the checks
    integrity: list[Finding] = []
    if before is not None:
        after = await asyncio.to_thread(RepoSnapshot.take, main_root, main_git_dir, files, before)
        for changed in before.changes(after):
            integrity.append(
                Finding(
                    "integrity",
                    f"a check changed {changed} in your repository while running unsandboxed; inspect it before you trust this repository",
                    "error",
                    path=changed if not changed.startswith(".git/") else None,
                    rule="main-repo-modified",
                    kind="integrity",
                )
            )
    return ChecksReport(runs=runs, sandboxed=info is not None, sandbox_note=note, integrity=integrity)
