"""The compute price indices of one delivery day, GPU class and zone (market
rules §5): Base, Peak and intraday VWAP. Pure Python, no Django import.

Methodology ``v1`` (the public page: ``/dashboard/methodology/index/v1/``):

- **Base**: the arithmetic mean of the day's hourly day-ahead clearing
  prices over the hours that have one. A day has 23, 24 or 25 delivery
  hours (``market.calendar.day_hours``); an hour without any bid has no
  price and is left out, an hour with bids but no cross has its price (the
  midpoint of the gap, volume 0) and counts. Volume: the GPU-hours traded in
  the auction that day.
- **Peak**: the same mean over the hours that start from 08:00 to 19:00
  local time (08:00-20:00) on Monday to Friday. Like EEX's Peak, every
  weekday counts, public holidays included; Saturdays and Sundays have no
  Peak (the value is ``None``, and still published). The DST changes happen
  at night on Sundays, so a weekday always has 12 peak hours.
- **Intraday VWAP**: sum(price x quantity) / sum(quantity) over the day's
  continuous intraday trades in the hourly instruments of the class and
  zone (auction trades, which sit in the same instruments, are left out).
  The document lists each hour's sums and its own VWAP; the day's value
  is computed from the exact sums, never from rounded hourly VWAPs.
- **Rounding**: each value is rounded once, from the exact quotient of
  whole cents (integer arithmetic), to the cent, half up (ROUND_HALF_UP:
  12.345 -> 12.35).
- **Document and fingerprint**: every value is published with the
  document it was computed from -- its identity, its inputs and its result
  -- and ``sha256``, the SHA-256 of the document's canonical JSON (UTF-8,
  keys sorted at every level, no spaces, prices as strings with exactly two
  places, counts as integers, ``null`` for a missing price). A day's
  ``fingerprint`` is the SHA-256 of the hexadecimal ``sha256`` values of
  the day's published values, lower case, concatenated without separator in
  the kind order base, peak, intraday_vwap (kinds not published yet are
  left out), taken as ASCII text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from market import calendar

METHODOLOGY_VERSION = "v1"

BASE = "base"
PEAK = "peak"
INTRADAY_VWAP = "intraday_vwap"
# The order in which a day's fingerprint takes its values' hashes.
KINDS: tuple[str, ...] = (BASE, PEAK, INTRADAY_VWAP)

# Peak: hours starting 08:00 up to 19:00 local (08:00-20:00), Monday to Friday.
PEAK_FIRST_HOUR = 8
PEAK_END_HOUR = 20

CENT = Decimal("0.01")


class IndexInputError(ValueError):
    """Inputs the methodology cannot take: an hour the day does not have, an
    hour twice, a price off the cent, a negative quantity."""


@dataclass(frozen=True)
class AuctionHour:
    """One hour of a cleared day-ahead auction: its label (``14``, ``02A``),
    clearing price (``None``: the hour had no bids) and volume in GPUs."""

    hour: str
    price: Decimal | None
    volume: int


@dataclass(frozen=True)
class TradeHour:
    """The continuous trades of one hourly instrument of the day, summed:
    ``notional`` = sum(price x quantity) in EUR/GPUh x GPUs (exact, two
    places), ``quantity`` in GPUs, ``trades`` their number."""

    hour: str
    notional: Decimal
    quantity: int
    trades: int


@dataclass(frozen=True)
class IndexRecord:
    """A computed index value, ready to publish: ``document`` is what
    ``sha256`` hashes (identity, inputs and result), ``canonical`` its
    canonical JSON."""

    kind: str
    day: date
    gpu_class: str
    zone: str
    value: Decimal | None
    volume: int
    demo: bool
    methodology_version: str
    document: dict[str, Any]
    canonical: bytes
    sha256: str


# --- numbers and the canonical form -----------------------------------------------------


def cents(amount: Decimal) -> int:
    """An amount in whole cents; IndexInputError off the cent."""
    if not amount.is_finite():
        raise IndexInputError(f"{amount} is not an amount in cents.")
    scaled = amount.scaleb(2)
    whole = int(scaled)
    if scaled != whole:
        raise IndexInputError(f"{amount} is not an amount in cents.")
    return whole


def divide_half_up(numerator_cents: int, denominator: int) -> Decimal:
    """``numerator_cents / denominator`` in EUR, rounded to the cent half up
    (away from zero at the half), exactly: integer arithmetic only."""
    if denominator <= 0:
        raise IndexInputError("Divide by a positive count.")
    rounded = (2 * abs(numerator_cents) + denominator) // (2 * denominator)
    return (Decimal(-rounded if numerator_cents < 0 else rounded) / 100).quantize(CENT)


def price_text(price: Decimal | None) -> str | None:
    """A price as the canonical string with exactly two places; IndexInputError off the cent."""
    if price is None:
        return None
    cents(price)
    return f"{price:.2f}"


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The canonical UTF-8 JSON of a document: keys sorted, no spaces."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def document_sha256(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(document)).hexdigest()


def day_fingerprint(hashes: Mapping[str, str]) -> str:
    """The fingerprint of a day: SHA-256 of its values' ``sha256`` (hex,
    lower case) concatenated in the order base, peak, intraday_vwap."""
    unknown = set(hashes) - set(KINDS)
    if unknown:
        raise IndexInputError(f"Unknown index kinds {sorted(unknown)}.")
    joined = "".join(hashes[kind].lower() for kind in KINDS if kind in hashes)
    return hashlib.sha256(joined.encode("ascii")).hexdigest()


# --- the hours of a day ------------------------------------------------------------------


def _labels(day: date) -> list[str]:
    return [hour.label for hour in calendar.day_hours(day)]


def peak_labels(day: date) -> tuple[str, ...]:
    """The labels of the day's peak hours: those starting 08:00-19:00 local on
    Monday to Friday (12 of them), none on Saturday and Sunday."""
    if day.weekday() >= 5:
        return ()
    return tuple(hour.label for hour in calendar.day_hours(day)
                 if PEAK_FIRST_HOUR <= hour.start.astimezone(calendar.BERLIN).hour < PEAK_END_HOUR)


_Hour = TypeVar("_Hour", AuctionHour, TradeHour)


def _by_label(day: date, hours: Iterable[_Hour]) -> dict[str, _Hour]:
    known = set(_labels(day))
    found: dict[str, _Hour] = {}
    for hour in hours:
        if hour.hour not in known:
            raise IndexInputError(f"{day.isoformat()} has no hour {hour.hour!r}.")
        if hour.hour in found:
            raise IndexInputError(f"Hour {hour.hour!r} is given twice.")
        found[hour.hour] = hour
    return found


def _document(kind: str, *, day: date, gpu_class: str, zone: str, demo: bool, version: str,
              hours: list[dict[str, Any]], value: Decimal | None, volume: int) -> IndexRecord:
    document = {
        "index": kind,
        "date": day.isoformat(),
        "gpu_class": gpu_class,
        "zone": zone,
        "methodology_version": version,
        "demo": demo,
        "hours": hours,
        "value": price_text(value),
        "volume": volume,
    }
    canonical = canonical_json(document)
    return IndexRecord(kind=kind, day=day, gpu_class=gpu_class, zone=zone, value=value, volume=volume, demo=demo,
                       methodology_version=version, document=document, canonical=canonical,
                       sha256=hashlib.sha256(canonical).hexdigest())


# --- the three indices -------------------------------------------------------------------


def _mean_of_prices(rows: Sequence[dict[str, Any]]) -> Decimal | None:
    prices = [cents(Decimal(row["price"])) for row in rows if row["price"] is not None]
    return divide_half_up(sum(prices), len(prices)) if prices else None


def _auction_rows(day: date, hours: Iterable[AuctionHour], labels: Iterable[str]) -> list[dict[str, Any]]:
    given = _by_label(day, hours)
    rows = []
    for label in labels:
        hour = given.get(label)
        if hour is not None and hour.volume < 0:
            raise IndexInputError(f"Hour {label}: a volume cannot be negative.")
        rows.append({"hour": label,
                     "price": price_text(hour.price) if hour is not None else None,
                     "volume": hour.volume if hour is not None else 0})
    return rows


def base_record(*, day: date, gpu_class: str, zone: str, hours: Iterable[AuctionHour], demo: bool = False,
                version: str = METHODOLOGY_VERSION) -> IndexRecord:
    """Base: the mean clearing price over the day's hours that have one. The
    document lists every hour of the day (an hour the auction has no row for
    as no price, volume 0)."""
    rows = _auction_rows(day, hours, _labels(day))
    return _document(BASE, day=day, gpu_class=gpu_class, zone=zone, demo=demo, version=version, hours=rows,
                     value=_mean_of_prices(rows), volume=sum(row["volume"] for row in rows))


def peak_record(*, day: date, gpu_class: str, zone: str, hours: Iterable[AuctionHour], demo: bool = False,
                version: str = METHODOLOGY_VERSION) -> IndexRecord:
    """Peak: the mean clearing price over the day's peak hours that have one;
    no value (and no hours) on Saturday and Sunday. ``hours`` may be the
    whole day's: the document keeps the peak hours only."""
    hours = list(hours)
    _by_label(day, hours)  # every hour must be the day's, even those outside peak
    peak = set(peak_labels(day))
    rows = _auction_rows(day, (hour for hour in hours if hour.hour in peak), peak_labels(day))
    return _document(PEAK, day=day, gpu_class=gpu_class, zone=zone, demo=demo, version=version, hours=rows,
                     value=_mean_of_prices(rows), volume=sum(row["volume"] for row in rows))


def intraday_vwap_record(*, day: date, gpu_class: str, zone: str, hours: Iterable[TradeHour], demo: bool = False,
                         version: str = METHODOLOGY_VERSION) -> IndexRecord:
    """Intraday VWAP: sum(notional) / sum(quantity) over the day's continuous
    trades; the document lists every hour of the day with its sums and its
    own VWAP (``None`` where nothing traded)."""
    given = _by_label(day, hours)
    rows = []
    notional, quantity = 0, 0
    for label in _labels(day):
        hour = given.get(label)
        if hour is None:
            rows.append({"hour": label, "notional": "0.00", "quantity": 0, "trades": 0, "vwap": None})
            continue
        if hour.quantity < 0 or hour.trades < 0 or (hour.quantity == 0) != (hour.trades == 0):
            raise IndexInputError(f"Hour {label}: the quantity and the number of trades do not fit.")
        hour_cents = cents(hour.notional)
        if hour.quantity == 0 and hour_cents != 0:
            raise IndexInputError(f"Hour {label}: a notional without quantity.")
        rows.append({"hour": label, "notional": price_text(hour.notional), "quantity": hour.quantity,
                     "trades": hour.trades,
                     "vwap": price_text(divide_half_up(hour_cents, hour.quantity)) if hour.quantity else None})
        notional += hour_cents
        quantity += hour.quantity
    value = divide_half_up(notional, quantity) if quantity else None
    return _document(INTRADAY_VWAP, day=day, gpu_class=gpu_class, zone=zone, demo=demo, version=version,
                     hours=rows, value=value, volume=quantity)


def trade_hours(trades: Iterable[tuple[str, Decimal, int]]) -> list[TradeHour]:
    """Sum single trades ``(hour label, price, quantity)`` into ``TradeHour`` rows."""
    sums: dict[str, tuple[int, int, int]] = {}
    for label, price, quantity in trades:
        if quantity <= 0:
            raise IndexInputError("A trade's quantity is positive.")
        notional, total, count = sums.get(label, (0, 0, 0))
        sums[label] = (notional + cents(price) * quantity, total + quantity, count + 1)
    return [TradeHour(hour=label, notional=(Decimal(notional) / 100).quantize(CENT), quantity=total, trades=count)
            for label, (notional, total, count) in sums.items()]


def value_from_document(document: Mapping[str, Any]) -> Decimal | None:
    """Recompute a published value from its document alone (what anyone can
    do with the open data): the check that the figure follows from the inputs."""
    hours = document["hours"]
    if document["index"] in (BASE, PEAK):
        return _mean_of_prices(hours)
    if document["index"] == INTRADAY_VWAP:
        quantity = sum(row["quantity"] for row in hours)
        notional = sum(cents(Decimal(row["notional"])) for row in hours)
        return divide_half_up(notional, quantity) if quantity else None
    raise IndexInputError(f"Unknown index {document['index']!r}.")
