"""Real parallel transactions for the concurrency tests (PostgreSQL only).

Each helper runs work in threads with their own database connections, which
every thread closes at its end."""

import threading
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

from django.db import connection

from clearing.models import Account
from exchange.errors import ExchangeError


def run_at_once(count: int, work: Callable[[int], str]) -> Counter[str]:
    """Run ``work(i)`` in ``count`` threads released together; count the outcomes.

    A refusal counts as its error code, any other failure as
    ``"TypeName: message"``, so a test can assert on every outcome."""
    barrier = threading.Barrier(count)
    outcomes: list[str] = []
    lock = threading.Lock()

    def thread(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcome = work(i)
        except ExchangeError as error:
            outcome = error.code
        except Exception as error:  # noqa: BLE001 - any failure is an outcome the test asserts on
            outcome = f"{type(error).__name__}: {error}"
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == count, "a thread hung"
    return Counter(outcomes)


class BalanceWatcher:
    """Reads one account's balance over and over, on its own connection, while a race runs."""

    def __init__(self, account_pk: int) -> None:
        self.account_pk = account_pk
        self.seen: list[Decimal] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch)

    def _watch(self) -> None:
        try:
            while not self._stop.is_set():
                self.seen.append(Account.objects.values_list("balance", flat=True).get(pk=self.account_pk))
        finally:
            connection.close()

    def __enter__(self) -> "BalanceWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
