"""Numbers on the trading screens."""

from decimal import Decimal

from django import template

from exchange.formats import number

register = template.Library()


@register.filter
def exact(value: Decimal | None) -> str:
    """An exact amount (a fill's fee, kept to six places) with as many places
    as it has, but at least two: 0,02 · 0,005 · 1.234,50 (German)."""
    if value is None:
        return ""
    exponent = value.normalize().as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return number(value, places)


@register.filter
def ratio(value: Decimal | None) -> str:
    """A ratio with the places it has and no more: 1 · 0,5 · 0,125 (German)."""
    if value is None:
        return ""
    exponent = value.normalize().as_tuple().exponent
    return number(value, max(0, -exponent) if isinstance(exponent, int) else 0)
