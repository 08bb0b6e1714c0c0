"""A start-up hedges next quarter's compute in Chromium (issue 10, tests): it
finds the quarter on the futures board, sees the contract value and the
initial margin before it sends, buys, and then sees its position, its margin
and the forward curve; after the day's settlement price and margin run the
same pages show the variation margin it paid.

The futures session is 08:00-18:00 on Berlin business days, so the server's
clock is moved to Monday 7 December 2026, 10:00 (it keeps running from
there). The in-process live server shares this process, so the move reaches
it; the order screens' live updates (WebSockets) are not served here, the
trading journey covers them."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from market.models import Instrument, Position, Side
from market.services import instruments_list_upcoming, instruments_open_close, orders
from tests.browser.conftest import Shots, sign_in
from tests.browser.test_csp_pages import Watched
from tests.factories import GpuClassFactory
from tests.market.test_dayahead_service import member
from tests.market.test_futures_day import MON, at, run_day
from tests.market.trading_setup import ensure_zones

pytestmark = pytest.mark.django_db(transaction=True)

QUARTER = "H100.DE.Q2027-1"


@pytest.fixture
def monday_morning(monkeypatch):  # type: ignore[no-untyped-def]
    start, shift = at(MON, 10, 0), at(MON, 10, 0) - datetime.now(UTC)
    monkeypatch.setattr("django.utils.timezone.now", lambda: datetime.now(UTC) + shift)
    return start


def test_a_startup_hedges_next_quarter_and_sees_position_margin_and_curve(new_page, live_server, request,
                                                                          monday_morning):
    ensure_zones("DE")
    GpuClassFactory(code="H100")
    instruments_list_upcoming(now=monday_morning)
    instruments_open_close(now=monday_morning)
    quarter = Instrument.objects.get(symbol=QUARTER)
    assert quarter.hours == 2159  # January 744 + February 672 + March 743 (clocks go forward on the 28th)
    startup, provider = member("Anna Start GmbH"), member("Berta Supply GmbH")
    for side, price in ((Side.SELL, "2.50"), (Side.SELL, "2.60"), (Side.BUY, "2.30")):
        orders.order_submit(user=provider[1], instrument=quarter, side=side, price=Decimal(price), quantity=5,
                            now=monday_morning)

    page = new_page(live_server.url)
    shots = Shots(page, request.node.name)
    sign_in(page, startup[1].email)

    # 1. The board lists next quarter with the provider's quotes.
    page.goto("/markets/futures/?gpu_class=H100")
    row = page.locator("[data-testid=futures-board] tbody tr", has_text=QUARTER)
    expect(row).to_contain_text("2,30")
    expect(row).to_contain_text("2,50")
    shots("board-before")
    row.locator(f"a:text-is('{QUARTER}')").click()

    # 2. Before sending: contract value and initial margin, hand-computed.
    expect(page.locator(".market-meta")).to_contain_text("01.01.2027 – 31.03.2027")
    expect(page.locator(".market-meta")).to_contain_text("Handel bis 30.12.2026 18:00")  # the 31st is a holiday
    form = page.locator("#order-form")
    expect(form).to_be_visible()
    form.locator("label.side-option-buy").click()
    form.locator("input[name=price]").fill("2,50")
    form.locator("input[name=quantity]").fill("5")
    preview = page.locator("#order-preview")
    # 2.50 x 5 GPUs x 2,159 h = 26,987.50; margin 15 % of it = 4,048.125, rounded up to 4,048.13.
    expect(preview).to_contain_text("26.987,50")
    expect(preview).to_contain_text("4.048,13")
    shots("preview")
    form.locator("button[type=submit]").click()
    expect(page.locator("#order-entry .alert-success")).to_be_visible()
    assert Position.objects.get(organisation=startup[0], instrument=quarter).quantity == 5

    # 3. Position and margin right after the trade, priced at the trade (no settlement price yet).
    watch = Watched(page)
    page.goto("/markets/futures/margin/")
    expect(page.locator("[data-testid=futures-positions]")).to_contain_text(QUARTER)
    expect(page.locator("[data-testid=futures-positions]")).to_contain_text("+5")
    expect(page.locator("[data-testid=initial-margin]")).to_contain_text("4.048,13")
    shots("margin-after-trade")

    # 4. The day: no trade between 17:00 and 17:30, so the DSP is the mid of 2.30 / 2.60 = 2.45.
    run_day(MON)
    page.reload()
    positions = page.locator("[data-testid=futures-positions] tbody tr", has_text=QUARTER)
    expect(positions).to_contain_text("2,45")
    # Variation (2.45 - 2.50) x 5 x 2,159 = -539.75; margin 0.15 x 2.45 x 10,795 = 3,967.1625,
    # rounded up to 3,967.17.
    expect(positions).to_contain_text("539,75")
    expect(page.locator("[data-testid=initial-margin]")).to_contain_text("3.967,17")
    shots("margin-after-day")

    # 5. The forward curve, on the member's board and in public.
    page.goto("/markets/futures/?gpu_class=H100")
    expect(page.locator("#forward-curve svg.main-svg").first).to_be_visible()
    expect(page.locator("[data-testid=futures-board] tbody tr", has_text=QUARTER)).to_contain_text("2,45")
    expect(page.locator("#forward-curve .xtick").first).to_contain_text("Jan")  # German month names
    expect(page.locator("#forward-curve")).to_contain_text("Mär")
    shots("board-after-day")
    phone = new_page(live_server.url, width=390, height=844, mobile=True)
    phone_watch = Watched(phone)
    phone.goto("/dashboard/futures/?gpu_class=H100")
    expect(phone.locator("#forward-curve svg.main-svg").first).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    Shots(phone, request.node.name + "_phone")("public-curve", full_page=False)
    assert watch.problems == [] and phone_watch.problems == []
