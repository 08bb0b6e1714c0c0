"""The money journey on the suite's PostgreSQL (tests/exchange/money_journey.py);
tests/exchange/test_embedded_journey.py runs the same journey on the
embedded default of `make run`."""

import pytest

from tests.exchange import money_journey


@pytest.mark.django_db
def test_the_money_journey_is_exact_to_the_cent():
    result = money_journey.run(money_journey.client_api())

    assert len(result["invoices"]) == 2
