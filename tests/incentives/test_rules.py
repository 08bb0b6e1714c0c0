"""The pure rules of the start financing, by hand and by hypothesis."""

from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from incentives.rules import add_months, payoff_month, repayment_amount

D = Decimal


def test_half_of_the_net_revenue_is_repaid_rounded_half_up():
    assert repayment_amount(net_revenue=D("933.34"), share=D("0.5"), owed=D("1000.00")) == D("466.67")
    assert repayment_amount(net_revenue=D("0.01"), share=D("0.5"), owed=D("1.00")) == D("0.01")  # 0.005 -> 0.01


def test_the_last_repayment_is_capped_at_what_is_owed():
    assert repayment_amount(net_revenue=D("70.00"), share=D("0.5"), owed=D("8.33")) == D("8.33")


def test_nothing_is_repaid_without_revenue_or_debt():
    assert repayment_amount(net_revenue=D("0.00"), share=D("0.5"), owed=D("8.33")) == D("0.00")
    assert repayment_amount(net_revenue=D("100.00"), share=D("0.5"), owed=D("0.00")) == D("0.00")
    assert repayment_amount(net_revenue=D("-5.00"), share=D("0.5"), owed=D("10.00")) == D("0.00")


def test_months_are_added_across_the_year():
    assert add_months(date(2026, 11, 1), 1) == date(2026, 12, 1)
    assert add_months(date(2026, 11, 1), 2) == date(2027, 1, 1)
    assert add_months(date(2026, 1, 1), 24) == date(2028, 1, 1)


def test_no_repayment_yet_is_not_projectable():
    assert payoff_month(owed=D("1000.00"), repayments=[]) is None


def test_the_payoff_is_projected_from_the_mean_of_the_last_three_months():
    repayments = [(date(2026, 6, 1), D("1000.00")),  # older than the last three: ignored
                  (date(2026, 7, 1), D("100.00")), (date(2026, 8, 1), D("200.00")), (date(2026, 9, 1), D("300.00"))]
    # mean 200.00; 450.00 owed takes ceil(2.25) = 3 months after September.
    assert payoff_month(owed=D("450.00"), repayments=repayments) == date(2026, 12, 1)
    # exactly 2 months' worth: two months.
    assert payoff_month(owed=D("400.00"), repayments=repayments) == date(2026, 11, 1)


def test_fewer_than_three_months_use_what_there_is():
    assert payoff_month(owed=D("533.33"), repayments=[(date(2026, 9, 1), D("466.67"))]) == date(2026, 11, 1)


def test_repaid_in_full_is_the_month_of_the_last_repayment():
    assert payoff_month(owed=D("0.00"), repayments=[(date(2026, 9, 1), D("5.00")),
                                                    (date(2026, 11, 1), D("1.00"))]) == date(2026, 11, 1)


cents = st.decimals(min_value=D("0.00"), max_value=D("1000000.00"), places=2)
shares = st.decimals(min_value=D("0.0001"), max_value=D("1"), places=4)


@given(net=cents, share=shares, owed=cents)
def test_a_repayment_is_whole_cents_never_above_the_debt_nor_the_share(net, share, owed):
    amount = repayment_amount(net_revenue=net, share=share, owed=owed)
    assert amount == amount.quantize(D("0.01"))
    assert D("0.00") <= amount <= owed
    assert amount <= net * share + D("0.005")


@given(owed=cents, amounts=st.lists(st.decimals(min_value=D("0.01"), max_value=D("100000.00"), places=2),
                                    min_size=1, max_size=6))
def test_the_projection_covers_the_debt_with_the_mean(owed, amounts):
    repayments = [(add_months(date(2026, 1, 1), i), amount) for i, amount in enumerate(amounts)]
    projected = payoff_month(owed=owed, repayments=repayments)
    recent = amounts[-3:]
    mean = sum(recent) / len(recent)
    if projected is None:  # only beyond the calendar
        assert owed / mean > (9999 - 2026) * 12
        return
    last = repayments[-1][0]
    months = (projected.year - last.year) * 12 + projected.month - last.month
    assert months * mean >= owed
    assert months == 0 or (months - 1) * mean < owed


def test_a_payoff_beyond_the_calendar_is_not_projectable():
    assert payoff_month(owed=D("1000000.00"), repayments=[(date(2026, 1, 1), D("0.01"))]) is None
