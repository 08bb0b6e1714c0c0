from playwright.sync_api import expect


def test_landing_page_is_german_in_chromium(page, shots):
    page.goto("/")

    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Rechenbörse")
    path = shots("landing")
    assert path.stat().st_size > 1000
