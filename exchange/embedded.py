"""The embedded default: PostgreSQL and Redis run by ``make run`` itself, under ``var/``.

With no ``DATABASE_URL`` and no ``REDIS_URL`` the exchange runs on a PostgreSQL
cluster and a Redis server that live in ``$VAR_DIR/embedded/`` and listen on
Unix sockets only (no TCP port to collide with another checkout, nothing
reachable from the network). ``scripts/run.sh`` starts them before the
exchange and stops them when it ends; the cluster's data stays, so demo data
survives a restart. The binaries come from Debian's ``postgresql`` and
``redis-server`` packages, installed with apt-get when missing (as
``scripts/services.sh`` does for the tests). Why not SQLite any more:
docs/embedded.md.

    python -m exchange.embedded start    # start (creating the cluster once); prints the exports
    python -m exchange.embedded stop     # stop both; the data stays
    python -m exchange.embedded env      # the exports only

``exchange.settings`` derives the same URLs from ``VAR_DIR`` when the
environment names none, so ``manage.py`` in a second terminal reaches the
services that ``make run`` started. No Django import here: this runs before
settings exist.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

DATABASE = "rechenboerse"
PG_USER = "postgres"
# Linux limits a Unix socket's path to 107 bytes (sun_path); PostgreSQL's is
# "<dir>/.s.PGSQL.5432".
MAX_SOCKET_PATH = 107
START_TIMEOUT_SECONDS = 60


class EmbeddedError(Exception):
    """The embedded services cannot be provided; the message says why and what to do."""


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def pg_data(self) -> Path:
        return self.root / "pg" / "data"

    @property
    def pg_run(self) -> Path:
        """The directory of PostgreSQL's socket (and nothing else)."""
        return self.root / "pg" / "run"

    @property
    def pg_log(self) -> Path:
        return self.root / "pg" / "postgresql.log"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def redis_socket(self) -> Path:
        return self.redis_dir / "redis.sock"

    @property
    def redis_pid(self) -> Path:
        return self.redis_dir / "redis.pid"


def paths(var_dir: Path | str) -> Paths:
    return Paths(Path(var_dir).resolve() / "embedded")


def database_url(var_dir: Path | str) -> str:
    """``postgres://postgres@<socket dir, %-encoded>/rechenboerse``: psycopg reads a
    host that starts with ``/`` as the directory of a Unix socket."""
    return f"postgres://{PG_USER}@{quote(str(paths(var_dir).pg_run), safe='')}/{DATABASE}"


def redis_url(var_dir: Path | str) -> str:
    return f"unix://{paths(var_dir).redis_socket}?db=0"


# --- Starting and stopping --------------------------------------------------------------


def _log(message: str) -> None:
    print(f"embedded: {message}", file=sys.stderr, flush=True)


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _as_postgres(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; Debian's package creates the user "postgres".
    return ["runuser", "-u", PG_USER, "--", *command] if _as_root() else command


def _run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload]  # noqa: S603 - fixed programs, our own arguments


def _apt_install(package: str) -> None:
    if not shutil.which("apt-get"):
        raise EmbeddedError(f"{package} is missing and there is no apt-get to install it: install it, "
                            "or set DATABASE_URL and REDIS_URL.")
    _log(f"installing {package} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        _run(["apt-get", "update", "-qq"], env=env)
        _run(["apt-get", "install", "-y", "-qq", package], env=env)
    except subprocess.CalledProcessError as error:
        raise EmbeddedError(f"apt-get could not install {package}: {error.stderr.strip()}") from error


def _pg_versions() -> dict[int, Path]:
    found: dict[int, Path] = {}
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        try:
            found[int(initdb.parent.parent.name)] = initdb.parent
        except ValueError:
            continue
    return found


def _pg_bin(data: Path) -> Path:
    """The binaries of the cluster's major version (the newest for a new cluster)."""
    versions = _pg_versions()
    if not versions:
        _apt_install("postgresql")
        versions = _pg_versions()
    if not versions:
        raise EmbeddedError("no PostgreSQL binaries under /usr/lib/postgresql after installing postgresql.")
    version_file = data / "PG_VERSION"
    if version_file.exists():
        major = int(version_file.read_text().strip())
        if major not in versions:
            raise EmbeddedError(f"the cluster in {data} is PostgreSQL {major}, but only "
                                f"{sorted(versions)} are installed: install postgresql-{major}, "
                                f"or remove {data.parent} to start afresh (the demo data is lost).")
        return versions[major]
    return versions[max(versions)]


def _check_socket_path(path: Path) -> None:
    if len(str(path).encode()) > MAX_SOCKET_PATH:
        raise EmbeddedError(f"the socket path {path} is longer than {MAX_SOCKET_PATH} bytes: "
                            "set VAR_DIR to a shorter directory.")


def _own_for_postgres(*directories: Path) -> None:
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        if _as_root():
            shutil.chown(directory, PG_USER, PG_USER)
    if _as_root():
        probe = _as_postgres(["test", "-w", str(directories[0])])
        if subprocess.run(probe, check=False).returncode != 0:  # noqa: S603 - fixed program
            raise EmbeddedError(f"the user {PG_USER} cannot reach {directories[0]} (a parent directory "
                                "is closed to other users): set VAR_DIR to a directory it can reach.")


def _pg_running(bindir: Path, p: Paths) -> bool:
    if not (p.pg_data / "postmaster.pid").exists():
        return False
    status = subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "status", "-D", str(p.pg_data)]),  # noqa: S603
                            check=False, capture_output=True)
    return status.returncode == 0


def start_postgres(var_dir: Path | str) -> None:
    p = paths(var_dir)
    _check_socket_path(p.pg_run / ".s.PGSQL.5432")
    bindir = _pg_bin(p.pg_data)
    _own_for_postgres(p.pg_data.parent, p.pg_run)
    if not (p.pg_data / "PG_VERSION").exists():
        _log(f"creating a PostgreSQL cluster in {p.pg_data}")
        p.pg_data.mkdir(exist_ok=True)
        p.pg_data.chmod(0o700)
        if _as_root():
            shutil.chown(p.pg_data, PG_USER, PG_USER)
        _run(_as_postgres([str(bindir / "initdb"), "-D", str(p.pg_data), "-U", PG_USER, "-A", "trust",
                           "-E", "UTF8", "--locale=C.UTF-8"]))
    if not _pg_running(bindir, p):
        # No TCP at all: the socket, in a directory only the owner can open.
        # synchronous_commit=off: a crash may lose the last few hundred
        # milliseconds of commits, never consistency (fsync stays on: the
        # demo data is kept between runs).
        options = (f"-c listen_addresses='' -k {p.pg_run} -c unix_socket_permissions=0700 "
                   "-c synchronous_commit=off")
        try:
            _run(_as_postgres([str(bindir / "pg_ctl"), "start", "-D", str(p.pg_data), "-w",
                               "-t", str(START_TIMEOUT_SECONDS), "-l", str(p.pg_log), "-o", options]))
        except subprocess.CalledProcessError as error:
            tail = p.pg_log.read_text(errors="replace").splitlines()[-5:] if p.pg_log.exists() else []
            raise EmbeddedError("PostgreSQL did not start: " + " | ".join([error.stdout.strip(), *tail])) from error
    _create_database(p)


def _create_database(p: Paths) -> None:
    import psycopg

    with psycopg.connect(host=str(p.pg_run), user=PG_USER, dbname="postgres", autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{DATABASE}"')


def stop_postgres(var_dir: Path | str) -> None:
    p = paths(var_dir)
    if not (p.pg_data / "postmaster.pid").exists():
        return
    bindir = _pg_bin(p.pg_data)
    # fast: roll back open transactions, disconnect, checkpoint; the data stays.
    subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "stop", "-D", str(p.pg_data), "-m", "fast", "-w"]),  # noqa: S603
                   check=False, capture_output=True)


def _redis_answers(p: Paths) -> bool:
    import redis

    if not p.redis_socket.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(p.redis_socket), socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def start_redis(var_dir: Path | str) -> None:
    p = paths(var_dir)
    _check_socket_path(p.redis_socket)
    if not shutil.which("redis-server"):
        _apt_install("redis-server")
    p.redis_dir.mkdir(parents=True, exist_ok=True)
    p.redis_dir.chmod(0o700)
    if _redis_answers(p):
        return
    # Broker queue, channel layer and cache only: nothing worth keeping, so no
    # snapshots and no append-only file.
    _run(["redis-server", "--port", "0", "--unixsocket", str(p.redis_socket), "--unixsocketperm", "700",
          "--daemonize", "yes", "--pidfile", str(p.redis_pid), "--logfile", str(p.redis_dir / "redis.log"),
          "--dir", str(p.redis_dir), "--save", "", "--appendonly", "no"])
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _redis_answers(p):
        if time.monotonic() > deadline:
            raise EmbeddedError(f"Redis did not start: see {p.redis_dir / 'redis.log'}")
        time.sleep(0.05)


def stop_redis(var_dir: Path | str) -> None:
    p = paths(var_dir)
    try:
        pid = int(p.redis_pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists() and b"redis-server" not in cmdline.read_bytes():
        return  # a stale pid file: that number belongs to another process now
    try:
        os.kill(pid, signal.SIGTERM)  # Redis exits cleanly on TERM (and saves nothing: --save "")
    except ProcessLookupError:
        return
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while p.redis_pid.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the server removes its pid file as it exits


def start(var_dir: Path | str) -> None:
    """Start whichever of the two the environment does not name."""
    if not os.environ.get("DATABASE_URL"):
        start_postgres(var_dir)
    if not os.environ.get("REDIS_URL"):
        start_redis(var_dir)


def stop(var_dir: Path | str) -> None:
    """Stop the ones ``start`` started (the data stays)."""
    if not os.environ.get("REDIS_URL"):
        stop_redis(var_dir)
    if not os.environ.get("DATABASE_URL"):
        stop_postgres(var_dir)


def exports(var_dir: Path | str) -> str:
    """The URLs the processes use: the environment's, else the embedded ones."""
    database = os.environ.get("DATABASE_URL") or database_url(var_dir)
    redis = os.environ.get("REDIS_URL") or redis_url(var_dir)
    return f"export DATABASE_URL='{database}' REDIS_URL='{redis}'"


def default_var_dir() -> Path:
    return Path(os.environ.get("VAR_DIR") or Path(__file__).resolve().parent.parent / "var")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    var_dir = default_var_dir()
    try:
        if command == "start":
            began = time.monotonic()
            start(var_dir)
            if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
                _log(f"up in {time.monotonic() - began:.1f} s under {paths(var_dir).root}")
            print(exports(var_dir))
        elif command == "stop":
            stop(var_dir)
        elif command == "env":
            print(exports(var_dir))
        else:
            print(f"usage: {argv[0]} start|stop|env", file=sys.stderr)
            return 2
    except EmbeddedError as error:
        _log(str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
