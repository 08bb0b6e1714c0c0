"""`make run`'s embedded default, tested the way `make run` starts it (issue 8
item 1): scripts/run.sh with no DATABASE_URL and no REDIS_URL, on a VAR_DIR of
its own and a free port. It starts PostgreSQL and Redis under VAR_DIR
(exchange/embedded.py), migrates, loads the demo data, and runs daphne, a
Celery worker and beat.

Against it, in processes of their own with the embedded environment:

* the money journey of the suite (tests/exchange/money_journey.py) through
  real HTTP, its settlement done by the worker and heard on the buyer's
  WebSocket, then a GTD order expired by the worker and heard the same way;
* a real job that fails in the worker (``clearing.charge_fees`` for a month
  that has not ended) raises the alarm in /healthz and ``manage.py
  reconcile``, and the same job's next success ends it;
* stopping run.sh stops everything it started, and the data stays in VAR_DIR.

Slow (a fresh cluster, migrations and the demo data: a minute or two on a
busy machine), so everything runs against one start.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.utils import timezone

from clearing.services.fees import month_of, previous_month
from exchange import embedded

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 600
# The start counts towards the first test: far beyond the suite's default.
pytestmark = pytest.mark.timeout(1200)
# The variables that would point the processes elsewhere than the embedded default.
UNSET = {"DATABASE_URL", "REDIS_URL", "REDIS_PREFIX", "DJANGO_ALLOW_ASYNC_UNSAFE", "DJANGO_SETTINGS_MODULE",
         "CELERY_TASK_ALWAYS_EAGER", "PYTEST_XDIST_WORKER", "PYTEST_CURRENT_TEST"}


@dataclass
class Embedded:
    base_url: str
    var_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[str]
    log: Path

    def python(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True,  # noqa: S603
                              text=True, timeout=timeout, check=False)

    def send_task(self, name: str, *args: str) -> None:
        """Send a job through the broker, as beat does; the worker of `make run` runs it."""
        sent = self.python("manage.py", "shell", "-c",
                           f"from exchange.celery import app; app.send_task({name!r}, args={list(args)!r})")
        assert sent.returncode == 0, sent.stderr

    def health(self) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(self.base_url + "/healthz/", timeout=10) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, {}


def running(pid: int) -> bool:
    """Alive and not a zombie (a daemon's parent may be a PID 1 that never reaps)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition, seconds: float, what: str, server: Embedded):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if server.process.poll() is not None:
            break
        time.sleep(1)
    raise AssertionError(f"{what}: not within {seconds} s. run.sh's output:\n{server.log.read_text()[-4000:]}")


def stop(server: Embedded) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)  # run.sh's trap stops its children and the services
        try:
            server.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)  # its own process group (start_new_session)
            server.process.wait(timeout=30)
    # Whatever happened above, leave no server of this test running.
    env = {key: value for key, value in os.environ.items() if key not in UNSET}
    embedded_env = {**env, "VAR_DIR": str(server.var_dir)}
    subprocess.run([sys.executable, "-m", "exchange.embedded", "stop"], cwd=ROOT, env=embedded_env,  # noqa: S603
                   capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def server() -> Iterator[Embedded]:
    # Not pytest's tmp_path: its parent is closed to other users, and the
    # cluster runs as the user postgres when the suite runs as root.
    var_dir = Path(tempfile.mkdtemp(prefix="rb-embedded-"))
    var_dir.chmod(0o755)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in UNSET}
    env.update(VAR_DIR=str(var_dir), PORT=str(port))
    log = var_dir / "run.log"
    with log.open("w") as output:
        process = subprocess.Popen([str(ROOT / "scripts" / "run.sh")], cwd=ROOT, env=env, stdout=output,  # noqa: S603
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
    started = Embedded(base_url=f"http://127.0.0.1:{port}", var_dir=var_dir, env=env, process=process, log=log)
    try:
        wait_for(lambda: started.health()[0] == 200, START_SECONDS, "make run's /healthz answering 200", started)
        yield started
    finally:
        stop(started)
        shutil.rmtree(var_dir, ignore_errors=True)


def test_the_embedded_default_is_postgresql_and_redis_under_var_dir(server: Embedded):
    status, body = server.health()

    assert status == 200, body
    checks = body["checks"]
    assert checks["database"] == {"ok": True, "detail": "postgresql"}  # type: ignore[index]
    assert checks["channel_layer"]["detail"] == "RedisChannelLayer"  # type: ignore[index]
    paths = embedded.paths(server.var_dir)
    assert (paths.pg_data / "PG_VERSION").exists()
    assert paths.redis_socket.is_socket()
    assert "http://127.0.0.1:" in server.log.read_text() and "startup@demo.example" in server.log.read_text()


def test_the_money_journey_runs_exactly_on_the_embedded_default(server: Embedded):
    result = server.python("-m", "tests.exchange.money_journey", server.base_url, timeout=600)

    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(summary["invoices"]) == 2


def test_a_failing_job_raises_the_alarm_until_it_succeeds(server: Embedded):
    def jobs_check() -> dict[str, object]:
        return server.health()[1].get("checks", {}).get("jobs", {})  # type: ignore[union-attr,return-value]

    assert jobs_check() == {"ok": True, "detail": "no failing job"}
    server.send_task("clearing.charge_fees", f"{month_of(timezone.now()):%Y-%m}")

    wait_for(lambda: jobs_check().get("ok") is False, 120, "the failure in /healthz", server)
    assert jobs_check() == {"ok": False, "detail": "failing: clearing.charge_fees"}
    assert server.health()[0] == 503
    reconcile = server.python("manage.py", "reconcile")
    assert reconcile.returncode == 1
    assert "BROKEN: jobs_succeed" in reconcile.stdout and "clearing.charge_fees" in reconcile.stdout

    server.send_task("clearing.charge_fees", f"{previous_month():%Y-%m}")
    wait_for(lambda: jobs_check().get("ok") is True, 120, "the alarm ending with the next success", server)


def test_stopping_make_run_stops_everything_and_keeps_the_data(server: Embedded):
    pid_file = embedded.paths(server.var_dir).pg_data / "postmaster.pid"
    postgres_pid = int(pid_file.read_text().splitlines()[0])
    redis_pid = int(embedded.paths(server.var_dir).redis_pid.read_text())

    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=120)

    assert not running(postgres_pid) and not running(redis_pid)
    assert not pid_file.exists()
    assert (embedded.paths(server.var_dir).pg_data / "PG_VERSION").exists()
    assert "Rechenbörse läuft auf" in server.log.read_text()
