"""Eligibility for a programme: the pure rule, with its edge cases."""

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from incentives.rules import (
    HAS_BOUGHT_BEFORE,
    NO_FOUNDING_DATE,
    NOT_A_MEMBER,
    NOT_AN_SME,
    STATE_NOT_COVERED,
    TOO_OLD,
    EligibilityRules,
    OrganisationFacts,
    eligibility,
)

TODAY = date(2026, 12, 4)
STARTUP = OrganisationFacts(is_member=True, founding_date=date(2024, 3, 1), is_sme=True, state="BE",
                            has_bought_before=False)
STRICT = EligibilityRules(max_age_years=5, sme_only=True, states=frozenset({"BE", "BY"}), first_time_buyers_only=True)


def facts(**changes: object) -> OrganisationFacts:
    return OrganisationFacts(**{**STARTUP.__dict__, **changes})  # type: ignore[arg-type]


def test_a_young_sme_in_a_covered_state_that_never_bought_is_eligible():
    assert eligibility(STARTUP, STRICT, TODAY) == []


def test_founded_exactly_n_years_ago_is_eligible_a_day_earlier_is_not():
    assert eligibility(facts(founding_date=date(2021, 12, 4)), STRICT, TODAY) == []
    assert eligibility(facts(founding_date=date(2021, 12, 3)), STRICT, TODAY) == [TOO_OLD]


def test_a_leap_day_today_counts_back_to_the_28th():
    assert eligibility(facts(founding_date=date(2023, 2, 28)), STRICT, date(2028, 2, 29)) == []
    assert eligibility(facts(founding_date=date(2023, 2, 27)), STRICT, date(2028, 2, 29)) == [TOO_OLD]


def test_no_founding_date_fails_an_age_rule_only():
    assert eligibility(facts(founding_date=None), STRICT, TODAY) == [NO_FOUNDING_DATE]
    assert eligibility(facts(founding_date=None), EligibilityRules(), TODAY) == []


def test_a_state_not_in_the_list_and_an_empty_list_for_all():
    assert eligibility(facts(state="HH"), STRICT, TODAY) == [STATE_NOT_COVERED]
    assert eligibility(facts(state="HH"), EligibilityRules(states=frozenset()), TODAY) == []


def test_an_organisation_that_has_bought_before():
    assert eligibility(facts(has_bought_before=True), STRICT, TODAY) == [HAS_BOUGHT_BEFORE]
    assert eligibility(facts(has_bought_before=True), EligibilityRules(), TODAY) == []


def test_sme_boundary_is_the_derived_flag():
    # 250 staff or more than 50 M EUR: accounts.Organisation.is_sme is False.
    assert eligibility(facts(is_sme=False), STRICT, TODAY) == [NOT_AN_SME]


def test_every_reason_is_listed_in_order():
    everything = facts(is_member=False, founding_date=date(2000, 1, 1), is_sme=False, state="NW",
                       has_bought_before=True)
    assert eligibility(everything, STRICT, TODAY) == [NOT_A_MEMBER, TOO_OLD, NOT_AN_SME, STATE_NOT_COVERED,
                                                      HAS_BOUGHT_BEFORE]


@given(days=st.integers(min_value=0, max_value=4000), years=st.integers(min_value=1, max_value=10))
def test_age_is_monotone(days, years):
    rules = EligibilityRules(max_age_years=years)
    founded = TODAY - timedelta(days=days)
    eligible = eligibility(facts(founding_date=founded), rules, TODAY) == []
    # If founded on some day is eligible, then founded any later day is too.
    if eligible and days > 0:
        assert eligibility(facts(founding_date=founded + timedelta(days=1)), rules, TODAY) == []
    assert eligible == (days <= (TODAY - date(TODAY.year - years, TODAY.month, TODAY.day)).days)
