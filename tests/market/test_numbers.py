from decimal import Decimal

import pytest
from django.utils import translation

from market.templatetags.market_numbers import exact


@pytest.mark.parametrize(("value", "german", "english"), [
    (Decimal("0.020000"), "0,02", "0.02"),
    (Decimal("0.005000"), "0,005", "0.005"),
    (Decimal("0.001515"), "0,001515", "0.001515"),
    (Decimal("1234.5"), "1.234,50", "1,234.50"),
    (Decimal("0"), "0,00", "0.00"),
])
def test_exact_amounts_keep_their_places_but_at_least_two(value, german, english):
    with translation.override("de"):
        assert exact(value) == german
    with translation.override("en"):
        assert exact(value) == english
