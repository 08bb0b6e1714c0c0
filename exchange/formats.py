"""Numbers in the sentences the services build (refusals, memos), in the
reader's language: "0,02 EUR/GPUh" and "1.234,56 EUR" in German, "0.02" and
"1,234.56" in English. One helper for all of them; templates use the
``floatformat`` filter instead (docs/i18n.md, "Numbers, money and dates").
The API's decimal strings are never localised: only ``detail`` texts are."""

from datetime import datetime
from decimal import Decimal

from django.utils import timezone
from django.utils.formats import date_format, number_format


def number(value: Decimal | int, places: int | None = 2) -> str:
    """``value`` in the active language's format, with thousands separators;
    ``places`` decimal places (2: euros and prices), ``None`` for the value's own."""
    return number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)


def moment(instant: datetime, format: str = "SHORT_DATETIME_FORMAT") -> str:
    """An instant in the site's time zone (Europe/Berlin), in the active language's format."""
    return date_format(timezone.localtime(instant), format)
