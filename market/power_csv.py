"""Read a SMARD export of wholesale electricity prices (smard.de, Download
centre, "Markt" -> "Großhandelspreise", CSV) into hourly prices of the
bidding zone DE-LU in EUR/MWh. Pure: no Django.

The formats accepted (UTF-8, optionally with a byte-order mark; ';' separated;
German numbers, e.g. ``1.234,56`` and ``-5,12``; ``-`` for no value):

* the current layout: a header ``Datum von;Datum bis;Deutschland/Luxemburg
  [€/MWh] Originalauflösungen;...`` and rows ``01.09.2026 00:00;01.09.2026
  01:00;85,12;...`` (hourly) or quarter-hourly rows (``00:00;00:15``, since
  the 15-minute day-ahead market of October 2025): the quarter hours of an
  hour are averaged, and all four must be there;
* the older layout: ``Datum;Anfang;Ende;Deutschland/Luxemburg [€/MWh] ...``
  with rows ``15.01.2024;00:00;01:00;39,01``.

Times are German local time. The clocks go forward on the last Sunday of
March (no 02:00 row) and back on the last Sunday of October: the first row
that reads 02:00 is summer time, the second winter time. Every hour is
returned as its start in UTC. Other columns (neighbouring zones) are
ignored. A row that cannot be read raises ``SmardError`` naming its line;
``-`` cells are skipped (no price for that hour).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
PRICE = Decimal("0.01")
ZONE_COLUMN = re.compile(r"^Deutschland/Luxemburg\s*\[€/MWh\]")
_NUMBER = re.compile(r"^-?[0-9]{1,3}(\.[0-9]{3})*(,[0-9]+)?$|^-?[0-9]+(,[0-9]+)?$")
# Wholesale prices are bounded by the day-ahead market's harmonised limits.
MIN_PRICE = Decimal("-500.00")
MAX_PRICE = Decimal("4000.00")


def gettext_noop(message: str) -> str:
    """Marks a message for the catalogue (makemessages reads this name) without
    translating it here: the admin translates ``SmardError.template``."""
    return message


class SmardError(ValueError):
    """A file that cannot be imported: ``template`` (English, in the catalogue)
    with ``params``, and the line it concerns."""

    def __init__(self, template: str, line: int | None = None, **params: object):
        self.template, self.params, self.line = template, params, line
        message = template % params if params else template
        super().__init__(f"Line {line}: {message}" if line is not None else message)


@dataclass(frozen=True)
class HourPrice:
    hour_start: datetime  # UTC
    price: Decimal  # EUR/MWh, 2 places


def parse_number(text: str) -> Decimal:
    """A German number: ``1.234,56`` -> 1234.56."""
    text = text.strip()
    if not _NUMBER.match(text):
        raise ValueError(text)
    try:
        return Decimal(text.replace(".", "").replace(",", "."))
    except InvalidOperation as error:  # pragma: no cover - the pattern admits only numbers
        raise ValueError(text) from error


def _day(text: str) -> date:
    found = re.fullmatch(r"([0-9]{2})\.([0-9]{2})\.([0-9]{4})", text.strip())
    if not found:
        raise ValueError(text)
    return date(int(found.group(3)), int(found.group(2)), int(found.group(1)))


def _clock(text: str) -> time:
    found = re.fullmatch(r"([0-9]{2}):([0-9]{2})", text.strip())
    if not found:
        raise ValueError(text)
    return time(int(found.group(1)), int(found.group(2)))


def _local(day: date, at: time, seen: set[datetime]) -> datetime:
    """A local wall-clock time as an aware instant: the second time a wall
    time occurs (the repeated hour in October) is the later instant."""
    naive = datetime.combine(day, at)
    fold = 1 if naive in seen else 0
    seen.add(naive)
    aware = naive.replace(tzinfo=BERLIN, fold=fold)
    if aware.astimezone(UTC).astimezone(BERLIN).replace(tzinfo=None) != naive:
        raise ValueError("this local time does not exist (the clocks go forward)")
    return aware


def parse(text: str) -> list[HourPrice]:
    """The hourly prices of DE-LU in the file, oldest first. Raises
    ``SmardError`` for a file that is not a SMARD price export, a row that
    cannot be read, an incomplete hour, or an hour given twice."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or not lines[0].strip():
        raise SmardError(gettext_noop("The file is empty."))
    header = [cell.strip() for cell in lines[0].split(";")]
    if header[:2] == ["Datum von", "Datum bis"]:
        layout, first_value = "new", 2
    elif header[:3] == ["Datum", "Anfang", "Ende"]:
        layout, first_value = "old", 3
    else:
        raise SmardError(gettext_noop('This is not a SMARD price export: the first line must start with '
                                      '"Datum von;Datum bis" or "Datum;Anfang;Ende".'), 1)
    columns = [i for i, name in enumerate(header) if i >= first_value and ZONE_COLUMN.match(name)]
    if not columns:
        raise SmardError(gettext_noop('The file has no column "Deutschland/Luxemburg [€/MWh]".'), 1)
    column = columns[0]
    seen: set[datetime] = set()
    quarters: dict[datetime, list[tuple[Decimal, int]]] = {}
    hourly: dict[datetime, Decimal] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split(";")
        if len(cells) <= column:
            raise SmardError(gettext_noop("Expected at least %(expected)s columns, found %(found)s."), number,
                             expected=column + 1, found=len(cells))
        try:
            if layout == "new":
                day_text, start_text = (cells[0].strip().split(" ") + [""])[:2]
                end_day_text, end_text = (cells[1].strip().split(" ") + [""])[:2]
                day, start = _day(day_text), _clock(start_text)
                end_day, end = _day(end_day_text), _clock(end_text)
            else:
                day, start, end = _day(cells[0]), _clock(cells[1]), _clock(cells[2])
                end_day = day + timedelta(days=1) if end <= start else day
        except ValueError:
            raise SmardError(gettext_noop('Cannot read the date and time "%(text)s" (expected e.g. 01.09.2026 '
                                          '00:00).'), number, text=";".join(cells[:first_value])) from None
        minutes = (datetime.combine(end_day, end) - datetime.combine(day, start)).total_seconds() / 60
        quarter = minutes == 15
        if not quarter and start.minute != 0:
            raise SmardError(gettext_noop("%(time)s is not the start of an hour or of a quarter hour."), number,
                             time=f"{start:%H:%M}")
        cell = cells[column].strip()
        if cell in ("-", ""):
            try:
                _local(day, start, seen)  # counts for the repeated hour in October
            except ValueError:
                pass
            continue
        try:
            price = parse_number(cell)
        except ValueError:
            raise SmardError(gettext_noop('"%(cell)s" is not a price in EUR/MWh (German format, e.g. 85,12).'),
                             number, cell=cell) from None
        if not MIN_PRICE <= price <= MAX_PRICE:
            raise SmardError(gettext_noop("%(cell)s EUR/MWh is outside the market's limits (%(low)s to %(high)s)."),
                             number, cell=cell, low=MIN_PRICE, high=MAX_PRICE)
        try:
            at = _local(day, start, seen).astimezone(UTC)
        except ValueError:
            raise SmardError(gettext_noop("%(time)s does not exist in German time (the clocks go forward)."),
                             number, time=f"{day:%d.%m.%Y} {start:%H:%M}") from None
        if quarter:
            hour = at.replace(minute=0)
            quarters.setdefault(hour, []).append((price, number))
            if len(quarters[hour]) > 4:
                raise SmardError(gettext_noop("An hour has more than four quarter hours."), number)
        else:
            if at in hourly:
                raise SmardError(gettext_noop("This hour is given twice."), number)
            hourly[at] = price.quantize(PRICE, rounding=ROUND_HALF_UP)
    for hour, values in quarters.items():
        if len(values) != 4:
            raise SmardError(gettext_noop("The hour from %(time)s has %(count)s of its four quarter hours."),
                             values[-1][1], time=f"{hour.astimezone(BERLIN):%d.%m.%Y %H:%M}", count=len(values))
        if hour in hourly:
            raise SmardError("this hour is given twice.", values[0][1])
        hourly[hour] = (sum((value for value, _line in values), Decimal(0)) / 4).quantize(PRICE, ROUND_HALF_UP)
    if not hourly:
        raise SmardError("The file holds no price.")
    return [HourPrice(hour_start=hour, price=hourly[hour]) for hour in sorted(hourly)]
