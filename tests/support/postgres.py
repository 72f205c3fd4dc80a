"""A throwaway PostgreSQL server for the team-ledger tests: initdb in a temporary directory, listening
only on a Unix socket (no TCP port), stopped at the end. Runs as the `postgres` user when started as
root (PostgreSQL refuses to run as root). Debian's `postgresql` package is installed by
scripts/setup-system.sh."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run scripts/setup-system.sh (Debian package `postgresql`)")
    return Path(found[-1]).parent


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    bindir = _bin_dir()
    base = Path(tempfile.mkdtemp(prefix="route-agent-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (base, sock):
            os.chown(path, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
        db_user = "postgres"
    else:
        db_user = pwd.getpwuid(os.geteuid()).pw_name
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", db_user, "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    log = base / "log"
    subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                    f"-c listen_addresses='' -k {sock} -c fsync=off", "start"], check=True, capture_output=True, timeout=90)
    try:
        yield f"postgresql://{db_user}@/postgres?host={sock}"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(base, ignore_errors=True)
