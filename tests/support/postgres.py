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


class PostgresServer:
    """A throwaway server that a test can kill (`pg_ctl stop -m immediate`, as a crash) and start again."""

    def __init__(self) -> None:
        self.bindir = _bin_dir()
        self.base = Path(tempfile.mkdtemp(prefix="route-agent-pg-"))
        self.data, self.sock, self.log = self.base / "data", self.base / "sock", self.base / "log"
        self.sock.mkdir()
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.base, self.sock):
                os.chown(path, user.pw_uid, user.pw_gid)
            self.run_as = ["runuser", "-u", "postgres", "--"]
            self.db_user = "postgres"
        else:
            self.db_user = pwd.getpwuid(os.geteuid()).pw_name
        subprocess.run([*self.run_as, str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", self.db_user, "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        self.dsn = f"postgresql://{self.db_user}@/postgres?host={self.sock}"

    def start(self) -> None:
        subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o",
                        f"-c listen_addresses='' -k {self.sock} -c fsync=off", "start"], check=True, capture_output=True, timeout=90)

    def kill(self) -> None:
        subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60, check=False)

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.base, ignore_errors=True)


@contextmanager
def restartable_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    with restartable_postgres() as server:
        yield server.dsn
