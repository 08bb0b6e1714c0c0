"""The pure rules of the start financing (issue 12; docs/incentives.md).

No Django import: plain Decimals and dates in and out, tested by hand-computed
cases and hypothesis (tests/incentives/test_rules.py).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def repayment_amount(*, net_revenue: Decimal, share: Decimal, owed: Decimal) -> Decimal:
    """What one month repays: ``share`` of the month's net fee revenue,
    rounded HALF_UP to the cent, never more than is still ``owed`` and never
    negative. ``net_revenue`` is the month's fees charged (without VAT) minus
    the funds' shares swept from them."""
    if net_revenue <= 0 or owed <= 0 or share <= 0:
        return ZERO
    due = (net_revenue * share).quantize(CENT, rounding=ROUND_HALF_UP)
    return min(due, owed.quantize(CENT, rounding=ROUND_HALF_UP))


def add_months(month: date, count: int) -> date:
    """The first day of the month ``count`` months after ``month``."""
    index = month.year * 12 + (month.month - 1) + count
    return date(index // 12, index % 12 + 1, 1)


def payoff_month(*, owed: Decimal, repayments: Sequence[tuple[date, Decimal]]) -> date | None:
    """The month in which the rest is expected to be repaid.

    ``repayments``: (month, amount) of the months repaid so far, in any
    order. Projected from the mean of the last (up to) three repayments: the
    rest takes ceil(owed / mean) more months after the last one. Nothing owed:
    the month of the last repayment (None without any). None ("not
    projectable") while there is no repayment yet, their mean is zero, or the
    month would lie beyond the year 9999.
    """
    ordered = sorted(repayments)
    if not ordered:
        return None
    last_month = ordered[-1][0].replace(day=1)
    if owed <= 0:
        return last_month
    recent = [amount for _month, amount in ordered[-3:]]
    mean = sum(recent, ZERO) / len(recent)
    if mean <= 0:
        return None
    months = int((owed / mean).to_integral_value(rounding=ROUND_CEILING))
    if last_month.year * 12 + last_month.month - 1 + months > 9999 * 12 + 11:
        return None  # beyond any calendar: as good as not projectable
    return add_months(last_month, months)


# --- eligibility for a programme (issue 12 part 2) ----------------------------------------

# Reason codes, in the order they are checked; the screens translate them.
NOT_A_MEMBER = "not_a_member"
NO_FOUNDING_DATE = "no_founding_date"
TOO_OLD = "too_old"
NOT_AN_SME = "not_an_sme"
STATE_NOT_COVERED = "state_not_covered"
HAS_BOUGHT_BEFORE = "has_bought_before"


@dataclass(frozen=True)
class OrganisationFacts:
    is_member: bool
    founding_date: date | None
    is_sme: bool
    state: str
    has_bought_before: bool


@dataclass(frozen=True)
class EligibilityRules:
    max_age_years: int | None = None  # None: any age
    sme_only: bool = False
    states: frozenset[str] = frozenset()  # empty: every state
    first_time_buyers_only: bool = False


def years_before(day: date, years: int) -> date:
    """The same calendar day ``years`` earlier; 29 February falls back to the
    28th (as ``accounts.models.years_before``)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def eligibility(facts: OrganisationFacts, rules: EligibilityRules, today: date) -> list[str]:
    """The reasons the organisation is not eligible; empty when it is.

    Age as the start-up flag counts it (market rules §6): founded at most
    ``max_age_years`` before ``today``, so a company founded exactly N years
    ago to the day still qualifies and one founded a day earlier does not.
    """
    reasons: list[str] = []
    if not facts.is_member:
        reasons.append(NOT_A_MEMBER)
    if rules.max_age_years is not None:
        if facts.founding_date is None:
            reasons.append(NO_FOUNDING_DATE)
        elif not years_before(today, rules.max_age_years) <= facts.founding_date:
            reasons.append(TOO_OLD)
    if rules.sme_only and not facts.is_sme:
        reasons.append(NOT_AN_SME)
    if rules.states and facts.state not in rules.states:
        reasons.append(STATE_NOT_COVERED)
    if rules.first_time_buyers_only and facts.has_bought_before:
        reasons.append(HAS_BOUGHT_BEFORE)
    return reasons


# --- credits (issue 12 parts 3-4) ---------------------------------------------------------


def add_calendar_months(day: date, months: int) -> date:
    """The same day ``months`` later; a day the month lacks falls back to
    its last day (31 January + 1 month = 28/29 February)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = index // 12, index % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class GrantState:
    """One grant of an organisation for the FIFO allocation."""

    id: int
    amount: Decimal
    expired: Decimal  # returned to the fund so far


def allocate_spent(grants: Sequence[GrantState], spent: Decimal) -> dict[int, Decimal]:
    """What each grant has been used for, when ``spent`` credits were spent
    from the earliest-expiring grant first. ``grants`` in expiry order; a
    grant can be used at most for what did not expire of it."""
    used: dict[int, Decimal] = {}
    left = max(spent, ZERO)
    for grant in grants:
        take = min(left, max(grant.amount - grant.expired, ZERO))
        used[grant.id] = take
        left -= take
    return used


def matching_cap(*, ratio: Decimal | None, own_purchases: Decimal) -> Decimal | None:
    """The most an organisation may hold in grants of a programme with a
    matching rule: ratio x its own purchases, rounded down to the cent;
    None without a rule."""
    if ratio is None:
        return None
    return (ratio * max(own_purchases, ZERO)).quantize(CENT, rounding=ROUND_FLOOR)
