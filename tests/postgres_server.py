"""A throw-away PostgreSQL server for the tests: initdb in a temporary folder, a free port on
127.0.0.1, no password (trust), fsync off; stopped and deleted afterwards.

Used by `.ci/run` (`python tests/postgres_server.py start` prints the URL and the folder to stop)
and by the `postgres_url` fixture when `HUBMAP_TEST_POSTGRES` names no server.  Needs the server
binaries of Debian's `postgresql` package (`/usr/lib/postgresql/<version>/bin`) or any initdb
and pg_ctl on PATH.  PostgreSQL refuses to run as root, so as root the server runs as the
`postgres` user that the package creates.

Standard library only: `.ci/run` calls it before the project is installed.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

USER = "hubmap"
DATABASE = "hubmap"


class NoServer(RuntimeError):
    """PostgreSQL cannot be started here (the reason says what to install)."""


def binaries() -> Path:
    """The folder holding initdb and pg_ctl."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if versions:
        return Path(versions[-1]).parent
    raise NoServer(
        "PostgreSQL's server binaries were not found (install Debian's 'postgresql' "
        "package, or set HUBMAP_TEST_POSTGRES=postgresql://user@host:port/database)"
    )


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise NoServer(
            "running as root, and there is no 'postgres' user to run the server as "
            "(Debian's 'postgresql' package creates it)"
        ) from None
    return ["runuser", "-u", "postgres", "--", *command]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(command: list[str]) -> None:
    done = subprocess.run(_as_server_user(command), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NoServer(f"{Path(command[0]).name} failed: {(done.stderr or done.stdout).strip()}")


def start() -> tuple[str, Path]:
    """Start a server; its URL (database `hubmap`) and its folder (for `stop`)."""
    bin_dir = binaries()
    folder = Path(tempfile.mkdtemp(prefix="hubmap-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ]
    )
    port = _free_port()
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    _run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    (folder / "port").write_text(str(port))
    _run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE])
    return f"postgresql://{USER}@127.0.0.1:{port}/{DATABASE}", folder


def stop(folder: Path) -> None:
    """Stop the server started in `folder`, and delete it."""
    try:
        _run([str(binaries() / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"]:
        try:
            url, folder = start()
        except NoServer as error:
            print(f"postgres_server: {error}", file=sys.stderr)
            return 1
        print(url)
        print(folder)
        return 0
    if argv[:1] == ["stop"] and len(argv) == 2:
        stop(Path(argv[1]))
        return 0
    print("usage: postgres_server.py start | stop FOLDER", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
