"""A throwaway PostgreSQL server on a free loopback port, for scale-out tests.

Uses the Debian server binaries (``apt-get install postgresql``; ``.ci/run`` installs them).
PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def _bindir() -> str | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    return (
        os.path.dirname(found[-1])
        if found
        else (os.path.dirname(shutil.which("pg_ctl")) if shutil.which("pg_ctl") else None)
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an SQLAlchemy URL of a fresh database; stop and delete the server afterwards."""
    bindir = _bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries not found (apt-get install postgresql)")
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    datadir = tempfile.mkdtemp(prefix="coatnet-pg-")
    if as_root:
        shutil.chown(datadir, "postgres", "postgres")
    port = _free_port()

    def pg(tool: str, *args: str) -> None:
        subprocess.run(
            [*prefix, f"{bindir}/{tool}", *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=datadir,
        )

    try:
        pg("initdb", "-D", datadir, "-U", "coatnet", "--auth=trust", "-E", "UTF8")
        pg(
            "pg_ctl",
            "-D",
            datadir,
            "-l",
            f"{datadir}/server.log",
            "-w",
            "-o",
            f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c max_connections=100",
            "start",
        )
        try:
            pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "coatnet", "coatnet")
            yield f"postgresql+psycopg2://coatnet@127.0.0.1:{port}/coatnet"
        finally:
            pg("pg_ctl", "-D", datadir, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(datadir, ignore_errors=True)
