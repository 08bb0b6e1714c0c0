"""The landing page states the market's figures as in force (issue 7 item 10):
the fee schedule of the moment and the GPU classes' bounds and margin, not
constants written into the view."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.urls import reverse
from django.utils import timezone

from clearing.models import FeeSchedule
from exchange.views import market_facts
from tests.factories import GpuClassFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _schedule(valid_from: datetime, *, maker: str, taker: str) -> FeeSchedule:
    return FeeSchedule.objects.create(
        valid_from=valid_from, day_ahead_per_side=D("0.0200"), intraday_maker=D(maker), intraday_taker=D(taker),
        futures_per_side=D("0.0030"), incentive_fund_share=D("0.20"), rnd_fund_share=D("0.10"))


def test_the_landing_page_shows_the_fee_schedule_in_force_and_the_classes_bounds(client, monkeypatch):
    _schedule(NOW - timedelta(days=1), maker="0.0040", taker="0.0125")
    _schedule(NOW + timedelta(days=1), maker="0.0090", taker="0.0900")  # not yet in force
    GpuClassFactory(code="H100", min_price=D("1.00"), max_price=D("250.00"), initial_margin_rate=D("0.1500"))
    GpuClassFactory(code="B200", min_price=D("2.00"), max_price=D("350.00"), initial_margin_rate=D("0.2000"))
    GpuClassFactory(code="OLD", max_price=D("999.00"), active=False)  # lists no new instruments
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    client.post(reverse("set_language"), {"language": "en", "next": "/"})

    html = client.get(reverse("home")).content.decode()

    assert '<td class="num">0.0125</td>' in html  # intraday taker, with its fourth decimal
    assert '<td class="num">0.004</td>' in html  # intraday maker
    assert '<td class="num">0.020</td>' in html  # day-ahead per side
    assert '<td class="num">0.003</td>' in html  # futures per side
    assert "0.090" not in html
    assert "1.00 – 350.00" in html
    assert "Initial margin of 15 to 20 percent" in html


def test_without_classes_or_schedules_the_market_rules_defaults_hold():
    FeeSchedule.objects.all()._raw_delete(FeeSchedule.objects.db)  # the seeded row too

    facts = market_facts(NOW)

    assert facts["tick"] == D("0.01")
    assert (facts["price_min"], facts["price_max"]) == (D("0.00"), D("200.00"))
    assert facts["initial_margin_percent"] == facts["initial_margin_percent_max"] == 15
    assert (facts["fee_intraday_maker"], facts["fee_intraday_taker"]) == (D("0.005"), D("0.015"))
    assert (facts["fee_day_ahead"], facts["fee_futures"]) == (D("0.010"), D("0.002"))
