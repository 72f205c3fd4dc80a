"""The check runner against real processes: environment, timeouts, setsid escapes, output caps,
the bubblewrap sandbox and the unsandboxed integrity comparison."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from route_agent.policy.models import Check
from route_agent.verify.checks import RACY_NS, check_environment, run_checks


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / "a.py").write_text("x = 1\n")
    subprocess.run(["git", "-C", str(root), "add", "."], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], check=True)
    return root


async def _run(root: Path, checks: list[Check], mode: str = "off", **kw: object):
    return await run_checks(checks, root, main_root=root, main_git_dir=root / ".git", sandbox_mode=mode, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("OPENAI_API_KEY", id="openai-key"),
        pytest.param("OPENROUTER_API_KEY", id="openrouter-key"),
        pytest.param("AWS_SECRET_ACCESS_KEY", id="aws"),
        pytest.param("GITHUB_TOKEN", id="github-token"),
        pytest.param("MY_SERVICE_TOKEN", id="any-token"),
        pytest.param("DB_PASSWORD", id="password"),
        pytest.param("SSH_AUTH_SOCK", id="ssh-agent"),
        pytest.param("RANDOM_VAR", id="not-allowlisted"),
    ],
)
def test_check_environment_drops_secrets(name: str) -> None:
    env = check_environment({name: "s3cr3t-value", "PATH": "/usr/bin", "HOME": "/root"}, "m")
    assert name not in env
    assert env["PATH"] == "/usr/bin"
    assert "s3cr3t-value" not in env.values()


async def test_check_that_prints_its_environment_shows_no_key(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    environ = dict(os.environ, OPENAI_API_KEY="sk-test-should-never-leak", FAKE_PROVIDER_API_KEY="fake-key-123")
    report = await _run(root, [Check(name="env", run=["env"])], environ=environ)
    run = report.runs[0]
    assert run.status == "pass"
    assert "PATH=" in run.output_excerpt
    assert "sk-test-should-never-leak" not in run.output_excerpt
    assert "fake-key-123" not in run.output_excerpt


async def test_check_reading_stdin_gets_eof(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    code = "import sys; data = sys.stdin.read(); print('got', len(data))"
    report = await _run(root, [Check(name="stdin", run=[sys.executable, "-c", code], timeout_s=10)])
    assert report.runs[0].status == "pass"
    assert "got 0" in report.runs[0].output_excerpt


@pytest.mark.parametrize("mode", [pytest.param("off", id="unsandboxed"), pytest.param("auto", id="sandboxed")])
async def test_setsid_grandchild_is_killed_at_timeout_and_reported(tmp_path: Path, mode: str) -> None:
    root = _repo(tmp_path)
    marker = tmp_path / "grandchild-still-alive"
    code = (
        "import subprocess, time\n"
        f"subprocess.Popen(['setsid', 'sh', '-c', 'sleep 4; touch {marker}'])\n"
        "time.sleep(60)\n"
    )
    report = await _run(root, [Check(name="hang", run=[sys.executable, "-c", code], timeout_s=1.5)], mode=mode)
    run = report.runs[0]
    assert run.timed_out
    assert run.status == "timeout"
    assert not run.passed
    assert any(f.rule == "timeout" for f in run.findings)
    import asyncio

    await asyncio.sleep(4.5)
    assert not marker.exists(), "the setsid grandchild outlived the check"


async def test_output_past_the_cap_kills_the_check(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    report = await _run(root, [Check(name="spam", run=["yes", "spam"], timeout_s=30)], max_output_bytes=200_000)
    run = report.runs[0]
    assert run.output_exceeded
    assert run.status == "output-exceeded"
    assert run.head.startswith("spam")
    assert len(run.head) + len(run.tail) <= 2 * 32 * 1024 + 8


async def test_missing_executable_is_a_clear_error(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    report = await _run(root, [Check(name="lint", run=["definitely-not-installed-tool"])])
    run = report.runs[0]
    assert run.status == "error"
    assert "not found on PATH" in (run.error or "")


async def test_checks_run_concurrently(tmp_path: Path) -> None:
    """Two independent checks overlap in time (each records when it ran; no wall-clock threshold)."""
    root = _repo(tmp_path)
    code = "import sys, time; start = time.time(); time.sleep(1.0); open(sys.argv[1], 'w').write(f'{start} {time.time()}')"
    stamps = [tmp_path / f"s{i}" for i in range(2)]
    checks = [Check(name=f"s{i}", run=[sys.executable, "-c", code, str(stamps[i])]) for i in range(2)]
    report = await _run(root, checks, concurrency=2)
    assert all(r.passed for r in report.runs)
    (a_start, a_end), (b_start, b_end) = ([float(x) for x in p.read_text().split()] for p in stamps)
    assert a_start < b_end and b_start < a_end, "the two checks ran one after the other"


async def test_unsandboxed_hook_write_is_reported_loudly(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    hook = root / ".git" / "hooks" / "pre-commit"
    report = await _run(root, [Check(name="evil", run=["sh", "-c", f"echo 'curl evil' > {hook}"])], mode="off")
    assert not report.passed
    assert any(f.kind == "integrity" and ".git/hooks/pre-commit" in f.message for f in report.integrity)


async def test_unsandboxed_tracked_file_write_is_reported(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    report = await _run(root, [Check(name="evil", run=["sh", "-c", f"echo y >> {root / 'a.py'}"])], mode="off")
    assert [f.path for f in report.integrity] == ["a.py"]


async def test_sandbox_blocks_writes_to_main_repo_and_network(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    worktree = tmp_path / "wt"
    worktree.mkdir()
    hook = root / ".git" / "hooks" / "pre-commit"
    code = (
        "import socket, pathlib, sys\n"
        f"try:\n    pathlib.Path({str(hook)!r}).write_text('x')\n    print('WROTE')\nexcept OSError as e:\n    print('blocked', e.errno)\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    print('ONLINE')\nexcept OSError:\n    print('offline')\n"
        "pathlib.Path('inside.txt').write_text('ok')\n"
    )
    report = await run_checks([Check(name="probe", run=[sys.executable, "-c", code])], worktree, main_root=root,
                              main_git_dir=root / ".git", sandbox_mode="required")
    run = report.runs[0]
    assert report.sandboxed and run.sandboxed
    assert "blocked" in run.output_excerpt and "WROTE" not in run.output_excerpt
    assert "offline" in run.output_excerpt
    assert (worktree / "inside.txt").read_text() == "ok"
    assert not hook.exists()


async def test_sandbox_required_but_unavailable_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from route_agent.verify import checks as checks_mod

    root = _repo(tmp_path)
    marker = tmp_path / "ran"
    monkeypatch.setattr(checks_mod, "probe_sandbox", lambda: checks_mod.SandboxInfo(False, "bubblewrap is not installed"))
    with pytest.raises(checks_mod.SandboxRequired, match="nothing was run"):
        await _run(root, [Check(name="t", run=["touch", str(marker)])], mode="required")
    assert not marker.exists()


async def test_sandbox_auto_without_bwrap_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from route_agent.verify import checks as checks_mod

    root = _repo(tmp_path)
    monkeypatch.setattr(checks_mod, "probe_sandbox", lambda: checks_mod.SandboxInfo(False, "bubblewrap is not installed"))
    report = await _run(root, [Check(name="t", run=["true"])], mode="auto")
    assert not report.sandboxed
    assert report.sandbox_note.startswith("NOT sandboxed")


async def test_junit_report_becomes_findings_at_user_paths(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    tests = root / "tests"
    tests.mkdir()
    (tests / "test_math.py").write_text("def test_ok():\n    assert 1 == 1\n\ndef test_bad():\n    assert 1 == 2\n")
    check = Check(name="tests", run=[sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=junit.xml", "tests"],
                  parser="junit", report="junit.xml", timeout_s=60)
    report = await _run(root, [check])
    run = report.runs[0]
    assert run.status == "fail"
    failing = [f for f in run.findings if f.rule == "failure"]
    assert len(failing) == 1
    assert failing[0].path == "tests/test_math.py"
    assert failing[0].line == 5
    assert "test_bad" in failing[0].message


async def test_sandboxed_check_sees_programs_under_tmp_and_gets_a_private_tmpdir(tmp_path: Path) -> None:
    """A virtual environment in /tmp (as in many CI clones) stays visible; TMPDIR is writable."""
    root = _repo(tmp_path)
    worktree = tmp_path / "wt"
    worktree.mkdir()
    tool = tmp_path / "bin" / "tool.sh"
    tool.parent.mkdir()
    tool.write_text('#!/bin/sh\necho from-tmp > "$TMPDIR/probe" && cat "$TMPDIR/probe" && echo "tmpdir=$TMPDIR"\n')
    tool.chmod(0o755)
    assert str(tool).startswith("/tmp/"), "pytest's tmp_path is expected under /tmp here"
    report = await run_checks([Check(name="probe", run=[str(tool)])], worktree, main_root=root, main_git_dir=root / ".git",
                              sandbox_mode="required")
    run = report.runs[0]
    assert run.sandboxed and run.status == "pass", run.output_excerpt
    assert "from-tmp" in run.output_excerpt
    tmpdir = run.output_excerpt.split("tmpdir=")[1].strip()
    assert not Path(tmpdir).exists(), "the check's scratch directory was not removed"


async def test_unsandboxed_same_size_write_with_its_times_set_back_is_reported(tmp_path: Path) -> None:
    # Tracked files are compared by inode status, not read: a rewrite that keeps the size and puts
    # mtime back still changes ctime, which no process can set back.
    root = _repo(tmp_path)
    target = root / "a.py"
    old = os.stat(target)
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns - 10_000_000_000))  # changed long ago: not re-read
    old = os.stat(target)
    code = (f"import os\np = {str(target)!r}\ndata = open(p, 'rb').read()\n"
            "open(p, 'wb').write(bytes([data[0] ^ 1]) + data[1:])\n"
            f"os.utime(p, ns=({old.st_atime_ns}, {old.st_mtime_ns}))\n")
    report = await _run(root, [Check(name="sly", run=[sys.executable, "-c", code])], mode="off")
    assert os.stat(target).st_mtime_ns == old.st_mtime_ns and os.stat(target).st_size == old.st_size
    assert [f.path for f in report.integrity] == ["a.py"]


async def test_unsandboxed_run_that_changes_nothing_reports_nothing_even_for_a_file_just_edited(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _repo(tmp_path)
    (root / "a.py").write_text((root / "a.py").read_text() + "# the user's edit a moment ago\n")
    # The check ends after the window in which a just-edited file is hashed (RACY_NS): the clock the
    # snapshots read moves past it once the first snapshot is taken. The second snapshot must hash
    # the file again (the first did), not compare a hash with an inode signature.
    from route_agent.verify import checks

    real_take, real_clock = checks.RepoSnapshot.take, time.time_ns
    later = 0

    def take(*args: object, **kwargs: object) -> checks.RepoSnapshot:
        nonlocal later
        snapshot = real_take(*args, **kwargs)  # type: ignore[arg-type]
        later = RACY_NS + 1_000_000
        return snapshot

    monkeypatch.setattr(checks.RepoSnapshot, "take", take)
    monkeypatch.setattr(checks.time, "time_ns", lambda: real_clock() + later)
    report = await _run(root, [Check(name="quiet", run=[sys.executable, "-c", "pass"])], mode="off")
    assert later, "no snapshot of the user's repository was taken"
    assert report.passed and report.integrity == []
