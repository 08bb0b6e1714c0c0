"""Translations: complete German catalogues, German by default, English on request,
and numbers and dates formatted for the reader's language."""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import allauth
import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone, translation

from exchange.allauth_formal_de import ALLAUTH_MSGIDS

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".venv", "var", "node_modules", ".git", "test-artifacts"}


# --- a tiny .po parser -------------------------------------------------------------


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    line: int = 0


_UNESCAPE = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(text: str) -> str:
    text = text.strip()
    assert text.startswith('"') and text.endswith('"'), text
    return re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m.group(1), m.group(1)), text[1:-1])


def parse_po(path: Path) -> list[Entry]:
    """Entries of a gettext catalogue, without the header and obsolete (#~) entries."""
    entries: list[Entry] = []
    current: Entry | None = None
    target: tuple[str, int] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            current, target = None, None
            continue
        if line.startswith("#~"):
            continue
        if current is None:
            current = Entry(line=number)
            entries.append(current)
        if line.startswith("#,"):
            current.flags.update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#"):
            continue
        elif line.startswith("msgid_plural "):
            current.msgid_plural, target = _unquote(line[13:]), ("msgid_plural", 0)
        elif line.startswith("msgid "):
            current.msgid, target = _unquote(line[6:]), ("msgid", 0)
        elif line.startswith("msgstr["):
            index = int(line[7 : line.index("]")])
            current.msgstr[index], target = _unquote(line[line.index("]") + 1 :]), ("msgstr", index)
        elif line.startswith("msgstr "):
            current.msgstr[0], target = _unquote(line[7:]), ("msgstr", 0)
        elif line.startswith('"') and target is not None:
            kind, index = target
            if kind == "msgid":
                current.msgid += _unquote(line)
            elif kind == "msgid_plural":
                current.msgid_plural = (current.msgid_plural or "") + _unquote(line)
            else:
                current.msgstr[index] += _unquote(line)
    return [entry for entry in entries if entry.msgid]


def catalogues(language: str) -> list[Path]:
    found = []
    for path in ROOT.rglob(f"locale/{language}/LC_MESSAGES/*.po"):
        if SKIP_DIRS.isdisjoint(path.relative_to(ROOT).parts):
            found.append(path)
    return sorted(found)


PLACEHOLDER = re.compile(r"%(?:\(\w+\))?[-#0 +]*\d*(?:\.\d+)?[sdifr%]")


def placeholders(text: str) -> list[str]:
    return sorted(p for p in PLACEHOLDER.findall(text) if p != "%%")


def test_the_parser_reads_multiline_plural_fuzzy_and_obsolete_entries(tmp_path):
    po = tmp_path / "django.po"
    po.write_text(
        'msgid ""\nmsgstr ""\n"Language: de\\n"\n\n'
        '#, fuzzy\nmsgid "Old"\nmsgstr "Alt"\n\n'
        'msgid ""\n"Two "\n"lines"\nmsgstr ""\n"Zwei "\n"Zeilen"\n\n'
        '#, python-format\nmsgid "%(n)s key"\nmsgid_plural "%(n)s keys"\nmsgstr[0] "%(n)s Schlüssel"\n'
        'msgstr[1] ""\n\n'
        '#~ msgid "Gone"\n#~ msgstr ""\n',
        encoding="utf-8",
    )

    entries = {entry.msgid: entry for entry in parse_po(po)}

    assert set(entries) == {"Old", "Two lines", "%(n)s key"}
    assert "fuzzy" in entries["Old"].flags
    assert entries["Two lines"].msgstr == {0: "Zwei Zeilen"}
    assert entries["%(n)s key"].msgstr == {0: "%(n)s Schlüssel", 1: ""}
    assert entries["%(n)s key"].msgid_plural == "%(n)s keys"


def test_there_are_german_catalogues_for_the_project_and_the_apps():
    found = {str(path.relative_to(ROOT)) for path in catalogues("de")}

    assert "locale/de/LC_MESSAGES/django.po" in found


def test_every_german_entry_is_translated_and_not_fuzzy():
    problems = []
    for path in catalogues("de"):
        for entry in parse_po(path):
            where = f"{path.relative_to(ROOT)}:{entry.line}"
            if "fuzzy" in entry.flags:
                problems.append(f"{where} fuzzy: {entry.msgid!r}")
            elif not entry.msgstr or any(not text for text in entry.msgstr.values()):
                problems.append(f"{where} untranslated: {entry.msgid!r}")

    assert not problems, "German catalogue entries to fix:\n" + "\n".join(problems)


def test_german_translations_keep_the_placeholders_of_their_source():
    # A lost or renamed %(name)s makes the page crash at render time, not at compile time.
    problems = []
    for path in catalogues("de"):
        for entry in parse_po(path):
            if "python-format" not in entry.flags:
                continue
            for index, text in entry.msgstr.items():
                source = entry.msgid if index == 0 or entry.msgid_plural is None else entry.msgid_plural
                wanted = placeholders(source)
                got = placeholders(text)
                # A singular form may leave out the count ("Ein Schlüssel").
                if got != wanted and not (entry.msgid_plural and set(got) <= set(wanted)):
                    problems.append(f"{path.relative_to(ROOT)}:{entry.line} {entry.msgid!r}: {got} != {wanted}")

    assert not problems, "\n".join(problems)


def test_the_formal_german_overrides_name_msgids_allauth_really_has():
    # After an allauth upgrade a changed msgid would silently fall back to allauth's own text.
    allauth_po = Path(allauth.__file__).parent / "locale" / "de" / "LC_MESSAGES" / "django.po"
    allauth_msgids = {entry.msgid for entry in parse_po(allauth_po)}

    unknown = [msgid for msgid in ALLAUTH_MSGIDS if msgid not in allauth_msgids]

    assert not unknown


# --- German by default, English on request ------------------------------------------------


def test_the_landing_page_is_german_by_default(client):
    response = client.get(reverse("home"))

    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="de">' in html
    assert "Öffentliche Börse für KI-Rechenkapazität" in html
    assert "Handelszeiten" in html
    assert ">Anmelden<" in html and ">Registrieren<" in html


def test_the_landing_page_is_english_after_choosing_english(client):
    response = client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert response.status_code == 302

    html = client.get(reverse("home")).content.decode()

    assert '<html lang="en">' in html
    assert "Public exchange for AI compute capacity" in html
    assert "Market times" in html
    assert ">Sign in<" in html
    assert "Anmelden" not in html


def test_allauth_pages_are_german_and_address_the_reader_formally(client):
    html = client.get(reverse("account_login")).content.decode()

    assert '<html lang="de">' in html
    assert "Passwort vergessen?" in html  # allauth's own catalogue
    assert "registrieren Sie sich" in html  # the project's formal override
    assert "erstelle" not in html


# --- numbers and dates in the reader's format -------------------------------------------------

# 11:00 in Berlin on the Saturday before the March clock change: the next gate
# closes at noon that day for Sunday, a 23-hour delivery day.
FIXED_NOW = datetime(2026, 3, 28, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("language", "fee", "bound", "gate", "delivery"),
    [
        ("de", "0,015", "200,00", "Samstag, 28. März 2026, 12:00", "Sonntag, 29. März 2026"),
        ("en", "0.015", "200.00", "Saturday, March 28, 2026, 12:00", "Sunday, March 29, 2026"),
    ],
)
def test_the_landing_page_formats_fees_and_dates_for_the_language(
    client, monkeypatch, language, fee, bound, gate, delivery
):
    monkeypatch.setattr(timezone, "now", lambda: FIXED_NOW)
    # The page names the next gate closure once the day-ahead auction is in service.
    monkeypatch.setattr("exchange.views.SEGMENTS_IN_SERVICE", frozenset({"intraday", "dayahead"}))
    client.post(reverse("set_language"), {"language": language, "next": "/"})

    html = client.get(reverse("home")).content.decode()

    assert f'<td class="num">{fee}</td>' in html  # intraday taker fee, EUR per GPU-hour
    assert bound in html  # upper price bound
    assert gate in html
    assert delivery in html


@pytest.mark.parametrize(("language", "expected"), [("de", "1.234,50"), ("en", "1,234.50")])
def test_grouped_decimals_use_the_languages_separators(language, expected):
    template = Template('{{ amount|floatformat:"2g" }}')

    with translation.override(language):
        rendered = template.render(Context({"amount": Decimal("1234.5")}))

    assert rendered == expected


def test_a_german_timestamp_is_shown_in_berlin_time():
    template = Template('{{ at|date:"DATETIME_FORMAT" }}')

    with translation.override("de"):
        rendered = template.render(Context({"at": datetime(2026, 7, 1, 10, 30, tzinfo=UTC)}))

    assert rendered == "1. Juli 2026 12:30"  # CEST, UTC+2


@pytest.mark.django_db
def test_an_english_browser_still_gets_german_until_it_chooses_english(client):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")

    assert '<html lang="de"' in response.content.decode()
    assert response["Content-Language"] == "de"

    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="de-DE")

    assert '<html lang="en"' in response.content.decode()
