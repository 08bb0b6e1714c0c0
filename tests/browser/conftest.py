"""Browser journeys: real Chromium (Debian's package) driven by Playwright.

Each journey saves a screenshot per step under test-artifacts/<test name>/.

Two servers:

* ``live_server`` (pytest-django): a WSGI server in a thread of the test
  process. Plain pages only: it speaks no WebSocket.
* ``asgi_live_server``: daphne serving ``exchange.asgi`` (HTTP and
  WebSockets) in a child process, for journeys with live screens. It is
  started the way ``make run`` starts it (``daphne exchange.asgi:application``,
  DEBUG on so that WhiteNoise serves the static files from the finders), on a
  free port, with ``DATABASE_URL`` pointing at the *test* database and the
  suite's Redis under a prefix of its own. A fresh process rather than
  channels' ``ChannelsLiveServerTestCase`` (which forks the test process):
  forking a process that runs Playwright's threads and holds open database
  connections is how a journey ends up hanging; a child that starts from
  nothing shares only the database and Redis with the test. Consequences for
  a journey using it: it must be transactional (``django_db(transaction=True)``:
  the child sees committed rows only), and the child runs the project's
  settings, not the suite's overrides (e.g. no MD5 password hasher: create
  users that log in through the browser with Django's default hashers).
"""

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.factories import TEST_PASSWORD

# Playwright's sync API runs an event loop in this thread; the Django ORM
# calls the tests make between steps are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

BASE_DIR = Path(__file__).resolve().parents[2]
ARTIFACTS = BASE_DIR / "test-artifacts"
DAPHNE_START_SECONDS = 60
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def sign_in(page: Page, email: str, password: str = TEST_PASSWORD) -> None:
    """Log in on the login page and wait until the header names the user."""
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(email)
    page.locator("input[name=password]").fill(password)
    page.locator("main form button[type=submit]").click()
    expect(page.locator(".user-chip")).to_contain_text(email)


class Shots:
    """Numbered screenshots of one journey."""

    def __init__(self, page: Page, name: str):
        self.page = page
        self.folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", name)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.count = 0

    def __call__(self, step: str, page: Page | None = None, *, full_page: bool = True) -> Path:
        """Screenshot the journey's page, or another actor's `page`; the whole
        page, or with ``full_page=False`` what the screen shows (phones)."""
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        (page or self.page).screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def page(browser: Browser, live_server) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    context = browser.new_context(
        base_url=live_server.url, locale="de-DE", timezone_id="Europe/Berlin", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def shots(page: Page, request: pytest.FixtureRequest) -> Shots:
    return Shots(page, request.node.name)


# --- daphne in a child process (HTTP + WebSockets) ----------------------------------------


@dataclass
class AsgiLiveServer:
    url: str
    output: list[str] = field(default_factory=list)  # the child's log, for failure reports

    def log(self) -> str:
        return "".join(self.output[-200:])


def _test_database_url() -> str:
    conf = connection.settings_dict
    credentials = quote(conf["USER"] or "", safe="")
    if conf["PASSWORD"]:
        credentials += ":" + quote(conf["PASSWORD"], safe="")
    host = conf["HOST"] or "localhost"
    port = f":{conf['PORT']}" if conf["PORT"] else ""
    return f"postgres://{credentials}@{host}{port}/{quote(conf['NAME'], safe='')}"


def spawn_daphne(env: dict[str, str]) -> tuple[subprocess.Popen[str], AsgiLiveServer]:
    """daphne serving ``exchange.asgi`` on a free port in a child process with
    ``env``, once it listens; stop it with ``stop_daphne``."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "0", "-v", "1", "exchange.asgi:application"],
        cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    server = AsgiLiveServer(url="")
    listening = threading.Event()

    def drain() -> None:
        # Read the child's log to the end, or it blocks once the pipe is full.
        assert process.stdout is not None
        for line in process.stdout:
            server.output.append(line)
            found = re.search(r"Listening on TCP address ([\d.]+):(\d+)", line)
            if found and not listening.is_set():
                server.url = f"http://{found.group(1)}:{found.group(2)}"
                listening.set()

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + DAPHNE_START_SECONDS
    while not listening.wait(0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"daphne did not start:\n{server.log()}")
    return process, server


def stop_daphne(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def live_server_env(**overrides: str) -> dict[str, str]:
    """The child's environment: the project's settings on the *test* database
    (call after django_db_setup) and the suite's Redis under a prefix of its own."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "exchange.settings",
        "DATABASE_URL": _test_database_url(),  # the name is test_… only after django_db_setup
        "REDIS_URL": settings.REDIS_URL,
        "REDIS_PREFIX": f"{settings.REDIS_PREFIX}-live-{uuid.uuid4().hex[:8]}",
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


@pytest.fixture(scope="session")
def asgi_live_server(django_db_setup: None) -> Iterator[AsgiLiveServer]:  # after the test database exists
    process, server = spawn_daphne(live_server_env(DEBUG="1"))
    try:
        yield server
    finally:
        stop_daphne(process)


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Pages of their own browser contexts (one per actor), German, Berlin time:
    ``new_page(base_url, width=390, height=844)``. Closed after the test."""
    contexts: list[BrowserContext] = []

    def make(base_url: str, *, width: int = 1280, height: int = 900, mobile: bool = False) -> Page:
        context = browser.new_context(
            base_url=base_url, locale="de-DE", timezone_id="Europe/Berlin", viewport={"width": width, "height": height},
            is_mobile=mobile, has_touch=mobile, device_scale_factor=2 if mobile else 1,
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
