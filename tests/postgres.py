"""A real PostgreSQL server for the tests: Debian's ``postgresql`` binaries, a throw-away
cluster in a temporary folder, on a free loopback port, stopped at the end.

The server runs as the ``postgres`` system user when the tests run as root (PostgreSQL refuses
root). Without the binaries the tests that need it are skipped, unless
``OVSAM_REQUIRE_POSTGRES=1`` (set by ``.ci/run``, which installs them) makes that a failure.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

REQUIRE_ENV = "OVSAM_REQUIRE_POSTGRES"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` folder (Debian layout), else ``None``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A PostgreSQL cluster in a new temporary folder of the system's (one the ``postgres``
    user can reach; pytest's are private to root): :meth:`start` it, use :attr:`url`,
    :meth:`stop` it (the folder is removed)."""

    def __init__(self, bindir: Path):
        self.root, self.bindir = Path(tempfile.mkdtemp(prefix="ovsam-postgres-")), bindir
        self.data = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://ovsam@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr or done.stdout}")

    def start(self) -> PostgresServer:
        """Make the cluster (user ``ovsam``, trust on loopback) and start the server."""
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "ovsam", "-A", "trust", "-E", "UTF8", "--no-sync")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "start")
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
