"""The futures pages in Chromium (issue 10, item 6): the member's board with
the forward curve drawn, its positions and margin, and the public forward
curve, at desktop and phone width, with no script error or policy violation."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Shots, sign_in
from tests.browser.test_csp_pages import Watched
from tests.market.test_dayahead_service import member
from tests.market.test_futures_day import MON, TUE, at, january, run_day, trade

pytestmark = pytest.mark.django_db(transaction=True)


def test_board_margin_and_public_curve_are_drawn(new_page, live_server, request):
    month = january()
    hedger, supplier = member("Anna Hedge GmbH"), member("Berta Supply GmbH")
    trade(month, hedger, supplier, "2.40", 10, at(MON, 17, 10))
    run_day(MON)
    trade(month, hedger, supplier, "2.46", 1, at(TUE, 17, 10))
    run_day(TUE)

    page = new_page(live_server.url)
    watch = Watched(page)
    shots = Shots(page, request.node.name)
    sign_in(page, hedger[1].email)

    page.goto("/markets/futures/?gpu_class=H100")
    expect(page.locator("#forward-curve svg.main-svg").first).to_be_visible()
    expect(page.locator("[data-testid=futures-board]")).to_contain_text("H100.DE.M2027-01")
    expect(page.locator("[data-testid=futures-board]")).to_contain_text("2,46")
    shots("board")
    page.goto("/markets/futures/margin/")
    expect(page.locator("[data-testid=futures-positions]")).to_contain_text("+11")
    # P&L at the DSP equals the variation margin paid so far: (2.46 - 2.40) x 10 x 744 = 446.40
    expect(page.locator("[data-testid=futures-positions] tbody tr").first).to_contain_text("446,40")
    # 0.15 x 2.46 x 11 GPUs x 744 h = 3,019.90 (rounded up from 3,019.896)
    expect(page.locator("[data-testid=initial-margin]")).to_contain_text("3.019,90")
    shots("margin")

    phone = new_page(live_server.url, width=390, height=844, mobile=True)
    phone_watch = Watched(phone)
    phone.goto("/dashboard/futures/?gpu_class=H100")
    expect(phone.locator("#forward-curve svg.main-svg").first).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    Shots(phone, request.node.name + "_phone")("public-curve", full_page=False)
    assert watch.problems == [] and phone_watch.problems == []
