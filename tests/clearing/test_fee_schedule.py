"""The effective-dated fee schedule and the fund shares of each trade's fees
(docs/architecture.md, "Fees, funds and withdrawals"). Amounts by hand."""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from clearing.fees import DEFAULT_FEE_TERMS, FeeRates, fund_split
from clearing.models import FeeSchedule, ImmutableError, JournalEntry
from clearing.selectors import fee_rates_at, fee_terms_at, house_balances
from clearing.services.fees import fees_charge_month, month_bounds, month_of
from market.models import Trade
from market.services.orders import order_submit
from tests.market.orders_world import books_balance, held, make_world, money

D = Decimal
BERLIN = ZoneInfo("Europe/Berlin")


def schedule(valid_from: datetime, *, maker: str = "0.005", taker: str = "0.015", incentive: str = "0.20",
             rnd: str = "0.10") -> FeeSchedule:
    return FeeSchedule.objects.create(
        valid_from=valid_from, day_ahead_per_side=D("0.01"), intraday_maker=D(maker), intraday_taker=D(taker),
        futures_per_side=D("0.002"), incentive_fund_share=D(incentive), rnd_fund_share=D(rnd),
    )


def house(kind: str) -> Decimal:
    # House accounts keep no running balance: their lines are the truth.
    return house_balances()[kind]


# --- the pure split -----------------------------------------------------------------------------


@pytest.mark.parametrize(("fee", "incentive", "rnd", "expected"), [
    ("0.08", "0.20", "0.10", ("0.05", "0.02", "0.01")),  # 0.016 -> 0.02, 0.008 -> 0.01
    ("0.07", "0.20", "0.10", ("0.05", "0.01", "0.01")),  # 0.014 -> 0.01, 0.007 -> 0.01
    ("0.28", "0.25", "0.15", ("0.17", "0.07", "0.04")),  # 0.07, 0.042 -> 0.04
    ("0.01", "0.50", "0.50", ("0.00", "0.01", "0.00")),  # both round up: R&D capped at what is left
    ("0.01", "0.20", "0.10", ("0.01", "0.00", "0.00")),  # 0.002 and 0.001 round away: all kept
    ("0.00", "0.20", "0.10", ("0.00", "0.00", "0.00")),
    ("1.00", "0", "0", ("1.00", "0.00", "0.00")),
])
def test_fund_split_rounds_each_share_half_up_and_keeps_the_remainder(fee, incentive, rnd, expected):
    parts = fund_split(D(fee), D(incentive), D(rnd))
    assert parts == tuple(D(x) for x in expected)
    assert sum(parts) == D(fee)


def test_fund_split_refuses_sub_cent_fees():
    with pytest.raises(ValueError, match="cents"):
        fund_split(D("0.005"), D("0.2"), D("0.1"))


# --- which schedule is in effect ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_seed_is_the_market_rules_from_new_year_2026_berlin():
    seed = FeeSchedule.objects.get(valid_from=datetime(2026, 1, 1, tzinfo=BERLIN))
    assert seed.valid_from == datetime(2025, 12, 31, 23, 0, tzinfo=ZoneInfo("UTC"))
    assert (seed.day_ahead_per_side, seed.intraday_maker, seed.intraday_taker, seed.futures_per_side) == (
        D("0.01"), D("0.005"), D("0.015"), D("0.002"))
    assert (seed.incentive_fund_share, seed.rnd_fund_share) == (D("0.20"), D("0.10"))
    assert fee_terms_at(seed.valid_from) == DEFAULT_FEE_TERMS


@pytest.mark.django_db
def test_the_row_with_the_latest_start_at_or_before_the_instant_applies():
    start = timezone.now() + timedelta(days=1)
    schedule(start, maker="0.010", taker="0.030", incentive="0.25", rnd="0.15")
    later = schedule(start + timedelta(days=1), maker="0.001", taker="0.002")

    assert fee_rates_at(start - timedelta(microseconds=1)) == DEFAULT_FEE_TERMS.intraday
    assert fee_rates_at(start) == FeeRates(maker=D("0.010"), taker=D("0.030"))
    assert fee_terms_at(start + timedelta(hours=5)).incentive_fund_share == D("0.25")
    assert fee_rates_at(later.valid_from) == FeeRates(maker=D("0.001"), taker=D("0.002"))
    # Before any row at all (the seed starts 2026-01-01): the market-rules defaults.
    assert fee_terms_at(datetime(2025, 6, 1, tzinfo=BERLIN)) == DEFAULT_FEE_TERMS


@pytest.mark.django_db
def test_trades_before_and_after_a_new_schedule_use_the_rates_of_their_time_and_the_sweep_the_shares_at_month_end():
    world = make_world()
    now = timezone.now()
    change = now + timedelta(minutes=10)
    after = change + timedelta(minutes=10)
    if month_of(now) != month_of(after):
        pytest.skip("the two trades would fall in two months (run in the last 20 minutes of a month)")
    schedule(change, maker="0.010", taker="0.030", incentive="0.25", rnd="0.15")

    # Charlie's buy of 10 rests at 12.00, entered under the old rates: 120.00 + 10 x 0.03.
    order_submit(user=world.charlie, instrument=world.instrument, side="buy", price=D("12.00"), quantity=10, now=now)
    assert money(world.org_c)["cash_reserved"] == D("120.30")

    # Before the change: Alice sells 3 (taker). Fb maker 0.005 x 3 = 0.015, Fs taker 0.015 x 3 = 0.045.
    order_submit(user=world.alice, instrument=world.instrument, side="sell", price=D("12.00"), quantity=3, now=now)
    # After the change: Alice sells the other 7. Charlie's buy keeps the
    # rates of its entry (market rules §3): Fb maker 0.005 x 7 = 0.035;
    # Alice's sell enters under the new ones: Fs taker 0.030 x 7 = 0.21.
    order_submit(user=world.alice, instrument=world.instrument, side="sell", price=D("12.00"), quantity=7, now=after)

    first, second = Trade.objects.order_by("id")
    assert (first.buyer_fee, first.seller_fee, first.executed_at) == (D("0.015"), D("0.045"), now)
    assert (second.buyer_fee, second.seller_fee, second.executed_at) == (D("0.035"), D("0.21"), after)
    # The trades book no fee revenue: their only house line is the CCP's.
    for trade, value in ((first, D("-36.00")), (second, D("-84.00"))):
        assert [(line.account.kind, line.amount)
                for line in JournalEntry.objects.get(reference=f"trade:{trade.pk}").lines.all()
                if line.account.organisation_id is None] == [("ccp", value)]
    # Held for the month: Charlie 0.050 -> 0.05 + VAT r(0.0095) = 0.06;
    # Alice 0.255 -> 0.26 + VAT r(0.0494) = 0.05 = 0.31.
    assert (held(world.org_c), held(world.org_a)) == (D("0.06"), D("0.31"))
    assert money(world.org_c) == {"cash_available": D("9879.94"), "cash_reserved": D("0.00"),
                                  "settlement_pending": D("120.00"), "margin": D("0.00")}
    assert money(world.org_a)["settlement_pending"] == D("119.69")  # 120.00 - 0.31

    # At month end the shares of the schedule then in effect (0.25/0.15) are
    # swept from the month's net revenue 0.05 + 0.26 = 0.31: incentive
    # 0.0775 -> 0.08, R&D 0.0465 -> 0.05; fee revenue keeps 0.18; VAT 0.01 + 0.05.
    month = month_of(now)
    assert fees_charge_month(month=month, now=month_bounds(month)[1]) == 2
    assert (house("fee_revenue"), house("incentive_fund"), house("rnd_fund"), house("vat_payable")) == (
        D("0.18"), D("0.08"), D("0.05"), D("0.06"))
    assert (held(world.org_c), held(world.org_a)) == (D("0.00"), D("0.00"))
    books_balance()


# --- immutable once in effect ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_schedule_in_effect_can_be_neither_changed_nor_deleted():
    row = schedule(datetime(2026, 2, 1, tzinfo=BERLIN))
    row.intraday_taker = D("0.020")
    with pytest.raises(ImmutableError, match="in effect"):
        row.save()
    row.valid_from = timezone.now() + timedelta(days=1)  # moving it into the future is a change too
    with pytest.raises(ImmutableError, match="in effect"):
        row.save()
    with pytest.raises(ImmutableError):
        row.delete()
    with pytest.raises(ImmutableError):
        FeeSchedule.objects.filter(pk=row.pk).update(intraday_taker=D("0.020"))
    with pytest.raises(ImmutableError):
        FeeSchedule.objects.all().delete()
    row.refresh_from_db()
    assert (row.intraday_taker, row.valid_from) == (D("0.015"), datetime(2026, 2, 1, tzinfo=BERLIN))


@pytest.mark.django_db
def test_a_future_schedule_may_change_until_it_takes_effect():
    row = schedule(timezone.now() + timedelta(days=2))
    row.intraday_taker = D("0.020")
    row.save()
    row.refresh_from_db()
    assert row.intraday_taker == D("0.020")

    stale = FeeSchedule.objects.get(pk=row.pk)
    # It takes effect (moved to the past behind the model's back, as time would):
    models.QuerySet.update(FeeSchedule._base_manager.filter(pk=row.pk),
                           valid_from=timezone.now() - timedelta(seconds=1))
    stale.intraday_taker = D("0.030")
    with pytest.raises(ImmutableError, match="in effect"):
        stale.save()
    row.refresh_from_db()
    assert row.intraday_taker == D("0.020")

    future = schedule(timezone.now() + timedelta(days=3))
    future.delete()
    assert not FeeSchedule.objects.filter(pk=future.pk).exists()


@pytest.mark.django_db
def test_a_new_schedule_must_start_in_the_future_with_sane_rates_and_shares():
    row = FeeSchedule(valid_from=timezone.now() - timedelta(minutes=1), day_ahead_per_side=D("0.01"),
                      intraday_maker=D("0.02"), intraday_taker=D("0.01"), futures_per_side=D("0.002"),
                      incentive_fund_share=D("0.8"), rnd_fund_share=D("0.3"))
    with pytest.raises(ValidationError) as caught:
        row.full_clean()
    assert set(caught.value.message_dict) == {"valid_from", "intraday_maker", "rnd_fund_share"}
    # The database refuses the shares whatever code runs.
    with pytest.raises(IntegrityError), transaction.atomic():
        schedule(timezone.now() + timedelta(days=1), incentive="0.8", rnd="0.3")
    with pytest.raises(IntegrityError), transaction.atomic():
        schedule(timezone.now() + timedelta(days=1), incentive="-0.1")


# --- admin --------------------------------------------------------------------------------------------


@pytest.fixture
def root(db):
    return User.objects.create_superuser(email="root@fees.test", password="pw-root-fees")


@pytest.mark.django_db
def test_admin_adds_a_future_schedule_and_marks_the_one_in_effect(client, root):
    client.force_login(root)
    past = schedule(datetime(2026, 2, 1, tzinfo=BERLIN))
    when = timezone.localtime(timezone.now() + timedelta(days=5))
    response = client.post(reverse("admin:clearing_feeschedule_add"), {
        "valid_from_0": when.strftime("%Y-%m-%d"), "valid_from_1": when.strftime("%H:%M:%S"),
        "day_ahead_per_side": "0.01", "intraday_maker": "0.006", "intraday_taker": "0.016",
        "futures_per_side": "0.002", "incentive_fund_share": "0.20", "rnd_fund_share": "0.10", "note": "2027",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    added = FeeSchedule.objects.get(note="2027")
    assert added.created_by == root

    # A start in the past is refused at the field.
    earlier = timezone.localtime(timezone.now() - timedelta(days=1))
    response = client.post(reverse("admin:clearing_feeschedule_add"), {
        "valid_from_0": earlier.strftime("%Y-%m-%d"), "valid_from_1": earlier.strftime("%H:%M:%S"),
        "day_ahead_per_side": "0.01", "intraday_maker": "0.006", "intraday_taker": "0.016",
        "futures_per_side": "0.002", "incentive_fund_share": "0.20", "rnd_fund_share": "0.10", "note": "late",
    })
    assert response.status_code == 200
    assert "valid_from" in response.context["adminform"].form.errors
    assert not FeeSchedule.objects.filter(note="late").exists()

    changelist = client.get(reverse("admin:clearing_feeschedule_changelist"))
    assert changelist.status_code == 200
    in_effect = changelist.context["cl"].result_list
    marks = {row.pk: row.in_effect for row in in_effect}
    assert marks[past.pk] is True and marks[added.pk] is False
    # The row in effect opens read-only and cannot be deleted; the future one can.
    delete = "admin:clearing_feeschedule_delete"
    assert client.post(reverse(delete, args=[past.pk]), {"post": "yes"}).status_code == 403
    assert client.post(reverse(delete, args=[added.pk]), {"post": "yes"}).status_code == 302
    assert FeeSchedule.objects.filter(pk=past.pk).exists()
