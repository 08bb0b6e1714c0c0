"""The site header in Chromium: for every demo role, at the widths people use
(phone to wide desktop), no menu link overlaps the language switch, the
signed-in user's name, the sign-in/out buttons or the wordmark, and nothing
leaves the screen. Judged by the elements' bounding boxes; a screenshot of
the header per role and width lands in test-artifacts/<test name>/.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from accounts.demo import DEMO_USERS, demo_password, seed_accounts
from tests.browser.conftest import ARTIFACTS

WIDTHS = [360, 768, 1280, 1440, 1920]
# Every demo login (README, "make run": traders, providers, the observer with
# the longest organisation name, the operator, a member awaiting KYC), and a
# visitor who is not signed in.
ROLES: dict[str, str | None] = {"anonymous": None, **{user.email.split("@")[0]: user.email for user in DEMO_USERS}}

# The header's parts as boxes: [left, top, right, bottom] of every rendered
# element (display: none has no box and is left out), with its text.
MEASURE = """() => {
  const boxes = selector => [...document.querySelectorAll(selector)]
    .map(element => ({element, rect: element.getBoundingClientRect()}))
    .filter(({rect}) => rect.width > 0 && rect.height > 0)
    .map(({element, rect}) => ({text: element.innerText.trim().replace(/\\s+/g, " "),
                                box: [rect.left, rect.top, rect.right, rect.bottom]}));
  return {
    links: boxes(".main-nav li"),
    others: [...boxes(".brand"), ...boxes(".lang-switch"), ...boxes(".user-chip"),
             ...boxes(".header-tools > form"), ...boxes(".header-tools > a")],
    user: boxes(".user-chip"),
    scrollWidth: document.documentElement.scrollWidth,
  };
}"""


def overlaps(a: list[float], b: list[float]) -> bool:
    # Touching edges are not an overlap; a fraction of a pixel of rounding is tolerated.
    return min(a[2], b[2]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[1], b[1]) > 0.5


def collisions(header: dict[str, Any]) -> list[str]:
    found = []
    links, others = header["links"], header["others"]
    for link in links:
        for other in others:
            if overlaps(link["box"], other["box"]):
                found.append(f"menu link {link['text']!r} overlaps {other['text']!r}")
    for i, link in enumerate(links):
        for later in links[i + 1:]:
            if overlaps(link["box"], later["box"]):
                found.append(f"menu links {link['text']!r} and {later['text']!r} overlap")
    for i, part in enumerate(others):
        for later in others[i + 1:]:
            if overlaps(part["box"], later["box"]):
                found.append(f"{part['text']!r} overlaps {later['text']!r}")
    return found


@pytest.fixture
def demo_members(transactional_db: None) -> None:
    seed_accounts()


@pytest.fixture
def signed_in(browser: Browser, live_server: Any) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    contexts = []

    def sign_in(email: str | None, language: str) -> Page:
        context = browser.new_context(base_url=live_server.url, locale="de-DE", timezone_id="Europe/Berlin",
                                      viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        if email:
            page.goto("/accounts/login/")
            page.fill("input[name=login]", email)
            page.fill("input[name=password]", demo_password())
            page.locator("main form button[type=submit]").first.click()
            page.wait_for_selector(".user-chip", state="attached")
        if language != "de":
            page.goto("/")
            page.locator(f'.lang-switch button[value="{language}"]').click()
            page.wait_for_selector(f'html[lang="{language}"]')
        return page

    yield sign_in
    for context in contexts:
        context.close()


@pytest.mark.parametrize("language", ["de", "en"])
def test_the_menu_never_overlaps_the_language_switch_or_the_user(demo_members, signed_in, language):
    folder = ARTIFACTS / f"test_navigation_{language}"
    folder.mkdir(parents=True, exist_ok=True)
    problems = []
    for role, email in ROLES.items():
        page = signed_in(email, language)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto("/")
            header = page.evaluate(MEASURE)
            header_box = page.locator(".site-header").bounding_box()
            assert header_box is not None
            page.screenshot(path=str(folder / f"{role}-{width}.png"),
                            clip={"x": 0, "y": 0, "width": width, "height": header_box["height"]})

            where = f"{role} at {width} px ({language})"
            problems += [f"{where}: {problem}" for problem in collisions(header)]
            if header["scrollWidth"] > width:
                problems.append(f"{where}: the page is {header['scrollWidth']} px wide")
            for part in header["links"] + header["others"]:
                if part["box"][0] < 0 or part["box"][2] > width:
                    problems.append(f"{where}: {part['text']!r} leaves the screen")
            if email:
                # Who is signed in stays in reach: the name beside the switch,
                # or on phones the menu's account link.
                names = " ".join(user["text"] for user in header["user"])
                account = {"de": "Konto", "en": "Account"}[language]
                assert email in names or account in [link["text"] for link in header["links"]], where
            assert header["links"], f"{where}: no menu"
    assert not problems, "\n".join(problems)
