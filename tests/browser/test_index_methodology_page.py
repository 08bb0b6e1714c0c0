"""The index methodology page in real Chromium: public, German, nothing
refused by the Content-Security-Policy, and the example's hashes fit the
narrow column (they wrap instead of widening the page)."""

import pytest
from playwright.sync_api import expect

from market.views.methodology import worked_example

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_methodology_page_reads_well_in_chromium(page, shots):
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto("/dashboard/methodology/index/")

    expect(page).to_have_url("/dashboard/methodology/index/v1/")
    expect(page.locator("h1")).to_contain_text("Preisindizes für Rechenkapazität: Methodik")
    expect(page.get_by_text(worked_example()["fingerprint"])).to_be_visible()  # type: ignore[arg-type]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shots("methodology")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shots("methodology-phone", full_page=False)
    assert problems == []
