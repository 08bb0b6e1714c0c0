"""The futures day (issue 10): settlement prices, variation and initial
margin, margin calls, hand-computed to the cent."""

from datetime import date, datetime, time
from decimal import Decimal

import pytest

from accounts.models import AuditLog
from clearing.models import Account
from exchange.errors import ExchangeError
from market import calendar
from market.models import (
    Instrument,
    InstrumentStatus,
    MarginCall,
    Order,
    OrderStatus,
    Segment,
    SettlementPrice,
    Side,
    Trade,
    VariationMargin,
)
from market.services import futures
from tests.factories import GpuClassFactory, UserFactory
from tests.market.test_dayahead_service import balance, member
from tests.market.trading_setup import ensure_zones

pytestmark = pytest.mark.django_db

D = Decimal
MON, TUE, WED = date(2026, 12, 7), date(2026, 12, 8), date(2026, 12, 9)


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return calendar.local_time(day, time(hh, mm))


def january() -> Instrument:
    ensure_zones("DE")
    gpu_class = GpuClassFactory(code="H100")
    period = calendar.parse_period("M2027-01")
    start, end = calendar.period_interval(period)
    return Instrument.objects.create(
        symbol="H100.DE.M2027-01", segment=Segment.FUTURES, gpu_class=gpu_class, zone_id=ensure_zone_id("DE"),
        period="M2027-01", delivery_start=start, delivery_end=end, hours=calendar.period_hours(period),
        min_price=D("0.00"), max_price=D("200.00"), lead_time_minutes=0,
        opens_at=datetime(2026, 7, 1, tzinfo=calendar.BERLIN), closes_at=start, status=InstrumentStatus.OPEN)


def ensure_zone_id(code: str) -> int:
    from market.models import DeliveryZone

    return DeliveryZone.objects.get(code=code).pk


def order(instrument, organisation, user, side, price, quantity, status=OrderStatus.OPEN):  # type: ignore[no-untyped-def]
    return Order.objects.create(instrument=instrument, organisation=organisation, placed_by=user, side=side,
                                price=D(price), quantity=quantity, priority=Order.objects.count() + 1,
                                status=status, filled_quantity=quantity if status == OrderStatus.FILLED else 0)


def trade(instrument, buyer, seller, price, quantity, when):  # type: ignore[no-untyped-def]
    buy = order(instrument, buyer[0], buyer[1], Side.BUY, price, quantity, OrderStatus.FILLED)
    sell = order(instrument, seller[0], seller[1], Side.SELL, price, quantity, OrderStatus.FILLED)
    from market.models import Position

    for (organisation, _user), sign in ((buyer, 1), (seller, -1)):
        position, _ = Position.objects.get_or_create(organisation=organisation, instrument=instrument)
        position.quantity += sign * quantity
        position.bought += quantity if sign > 0 else 0
        position.sold += quantity if sign < 0 else 0
        position.buy_cost += D(price) * quantity if sign > 0 else 0
        position.sell_proceeds += D(price) * quantity if sign < 0 else 0
        position.save()
    return Trade.objects.create(instrument=instrument, buy_order=buy, sell_order=sell, buyer=buyer[0],
                                seller=seller[0], price=D(price), quantity=quantity, aggressor=Side.BUY,
                                buyer_fee=D("0"), seller_fee=D("0"), executed_at=when)


def run_day(day: date) -> None:
    futures.settlement_prices_compute(day=day, now=at(day, 17, 30))
    futures.variation_margin_run(day=day, now=at(day, 18, 15))


@pytest.fixture
def world():
    instrument = january()
    assert instrument.hours == 744
    return {"m": instrument, "a": member("Anna Hedge GmbH"), "b": member("Berta Supply GmbH"),
            "c": member("Carl Quotes GmbH")}


def test_three_days_of_settlement_and_margin_hand_computed(world):
    m, a, b, c = world["m"], world["a"], world["b"], world["c"]
    # Monday: A buys 10 from B at 2.40 at 17:10 -> DSP 2.40 (VWAP of 17:00-17:30).
    trade(m, a, b, "2.40", 10, at(MON, 17, 10))
    run_day(MON)
    assert SettlementPrice.objects.get(date=MON).price == D("2.40")
    # Initial margin 0.15 x 2.40 x 10 x 744 = 2,678.40 each, no variation yet.
    for party in (a, b):
        assert balance(party[0], Account.Kind.MARGIN) == D("2678.40")
        assert balance(party[0], Account.Kind.CASH_AVAILABLE) == D("7321.60")

    # Tuesday: no trade; C quotes 2.45 / 2.47 -> DSP 2.46 (mid).
    bid = order(m, c[0], c[1], Side.BUY, "2.45", 1)
    ask = order(m, c[0], c[1], Side.SELL, "2.47", 1)
    run_day(TUE)
    row = SettlementPrice.objects.get(date=TUE)
    assert (row.price, row.source) == (D("2.46"), "mid")
    # A: +0.06 x 10 x 744 = +446.40; IM 0.15 x 2.46 x 7,440 = 2,745.36, topped up by 66.96.
    assert balance(a[0], Account.Kind.CASH_AVAILABLE) == D("7701.04")
    assert balance(a[0], Account.Kind.MARGIN) == D("2745.36")
    assert balance(b[0], Account.Kind.CASH_AVAILABLE) == D("6808.24")
    # C: one GPU either way at 2.46: 0.15 x 2.46 x 744 = 274.536 -> 274.54 (rounded up).
    assert balance(c[0], Account.Kind.MARGIN) == D("274.54")

    # Wednesday: C requotes 2.40 / 2.46 -> DSP 2.43.
    Order.objects.filter(pk__in=[bid.pk, ask.pk]).update(status=OrderStatus.CANCELLED)
    order(m, c[0], c[1], Side.BUY, "2.40", 1)
    order(m, c[0], c[1], Side.SELL, "2.46", 1)
    run_day(WED)
    # A: -0.03 x 7,440 = -223.20; IM 2,711.88, 33.48 released.
    assert balance(a[0], Account.Kind.CASH_AVAILABLE) == D("7511.32")
    assert balance(a[0], Account.Kind.MARGIN) == D("2711.88")
    assert balance(b[0], Account.Kind.CASH_AVAILABLE) == D("7064.92")
    # Each side's money moved by exactly its P&L: (2.43 - 2.40) x 7,440 = 223.20.
    assert balance(a[0], Account.Kind.CASH_AVAILABLE) + balance(a[0], Account.Kind.MARGIN) == D("10223.20")
    assert balance(b[0], Account.Kind.CASH_AVAILABLE) + balance(b[0], Account.Kind.MARGIN) == D("9776.80")
    assert list(VariationMargin.objects.filter(organisation=a[0]).order_by("date").values_list("amount", flat=True)
                ) == [D("0.00"), D("446.40"), D("-223.20")]
    summary = futures.margin_summary(organisation_id=a[0].pk, on=WED)
    assert summary["initial_margin"] == D("2711.88") and summary["collateral"] == D("2711.88")
    assert summary["maintenance_margin"] == D("2033.91") and summary["margin_call"] is None
    from clearing.reconcile import reconcile

    assert reconcile() == []


def test_each_daily_job_runs_once(world):
    m, a, b = world["m"], world["a"], world["b"]
    trade(m, a, b, "2.40", 10, at(MON, 17, 10))
    assert futures.settlement_prices_compute(day=MON, now=at(MON, 17, 30)) == 1
    assert futures.settlement_prices_compute(day=MON, now=at(MON, 17, 45)) == 0
    assert futures.variation_margin_run(day=MON, now=at(MON, 18, 15)) == 2
    assert futures.variation_margin_run(day=MON, now=at(MON, 18, 30)) == 0
    assert balance(a[0], Account.Kind.MARGIN) == D("2678.40")


def test_no_settlement_before_1730_and_no_margin_before_the_prices(world):
    with pytest.raises(ExchangeError):
        futures.settlement_prices_compute(day=MON, now=at(MON, 17, 29))
    with pytest.raises(ExchangeError):
        futures.variation_margin_run(day=MON, now=at(MON, 18, 15))
    with pytest.raises(ExchangeError):
        futures.settlement_prices_compute(day=date(2026, 12, 5), now=at(date(2026, 12, 5), 18))  # a Saturday


def test_a_member_below_maintenance_gets_a_margin_call(world):
    m, a = world["m"], world["a"]
    poor = member("Paula Knapp GmbH", cash="3000.00")
    trade(m, a, poor, "2.40", 10, at(MON, 17, 10))
    run_day(MON)
    assert balance(poor[0], Account.Kind.CASH_AVAILABLE) == D("321.60")
    trade(m, a, world["c"], "2.70", 1, at(TUE, 17, 5))  # Tuesday's DSP: 2.70
    run_day(TUE)
    # Poor loses 0.30 x 7,440 = 2,232.00: 321.60 from cash, 1,910.40 from margin (768.00 left);
    # requirement 0.15 x 2.70 x 7,440 = 3,013.20, maintenance 2,259.90: a call for 2,245.20.
    assert balance(poor[0], Account.Kind.CASH_AVAILABLE) == D("0.00")
    assert balance(poor[0], Account.Kind.MARGIN) == D("768.00")
    call = MarginCall.objects.get(organisation=poor[0])
    assert call.amount == D("2245.20") and call.due_at == at(WED, 10)
    assert futures.margin_summary(organisation_id=poor[0].pk, on=TUE)["margin_call"]["amount"] == D("2245.20")


def test_an_operator_overrides_a_dsp_with_a_reason_before_the_margin_run(world):
    m, a, b = world["m"], world["a"], world["b"]
    trade(m, a, b, "2.40", 10, at(MON, 17, 10))
    futures.settlement_prices_compute(day=MON, now=at(MON, 17, 30))
    row = SettlementPrice.objects.get(date=MON)
    operator = UserFactory(email="olga@operator.example", is_staff=True)
    with pytest.raises(ExchangeError) as no_reason:
        futures.settlement_price_override(operator=operator, settlement_price=row, price=D("2.50"), reason=" ")
    assert no_reason.value.code == "invalid"
    futures.settlement_price_override(operator=operator, settlement_price=row, price=D("2.50"),
                                      reason="fat-finger trade at 17:10")
    row.refresh_from_db()
    assert (row.price, row.source, row.computed_price) == (D("2.50"), "override", D("2.40"))
    assert AuditLog.objects.filter(action="settlement_price.override", actor=operator).exists()
    futures.variation_margin_run(day=MON, now=at(MON, 18, 15))
    # A bought at 2.40, settles at 2.50: +744.00.
    assert VariationMargin.objects.get(organisation=a[0]).amount == D("744.00")
    with pytest.raises(ExchangeError) as late:
        futures.settlement_price_override(operator=operator, settlement_price=row, price=D("2.45"), reason="again")
    assert late.value.code == "conflict"


def test_the_commands_run_the_day_once(world, monkeypatch):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.utils import timezone

    m, a, b = world["m"], world["a"], world["b"]
    trade(m, a, b, "2.40", 10, at(MON, 17, 10))
    monkeypatch.setattr(timezone, "now", lambda: at(MON, 18, 20))
    out = StringIO()
    call_command("compute_settlement_prices", "--date", MON.isoformat(), stdout=out)
    call_command("run_variation_margin", "--date", MON.isoformat(), stdout=out)
    call_command("run_variation_margin", "--date", MON.isoformat(), stdout=out)
    assert out.getvalue().splitlines() == [
        "2026-12-07: 1 prices set", "2026-12-07: 2 members booked",
        "2026-12-07: 0 members booked (already done, or nothing to do)"]
    with pytest.raises(CommandError):
        call_command("run_variation_margin", "--date", TUE.isoformat())


def test_the_default_fund_covers_two_stress_losses_and_the_drill_changes_nothing(world):
    from io import StringIO

    from django.core.management import call_command

    from clearing.models import JournalEntry
    from market.models import DefaultFundSize

    m, a, b = world["m"], world["a"], world["b"]
    trade(m, a, b, "2.40", 10, at(MON, 17, 10))
    run_day(MON)
    # Each side: stress loss 0.30 x 2.40 x 7,440 = 5,356.80, initial margin 2,678.40, so
    # 2,678.40 uncovered each: the fund is 5,356.80, half from each (equal margins).
    assert futures.default_fund_run(day=MON, now=at(MON, 18, 40)) == D("5356.80")
    assert futures.default_fund_run(day=MON, now=at(MON, 18, 45)) is None
    assert DefaultFundSize.objects.get().size == D("5356.80")
    for party in (a, b):
        assert balance(party[0], Account.Kind.DEFAULT_FUND) == D("2678.40")
        assert balance(party[0], Account.Kind.CASH_AVAILABLE) == D("4643.20")
    entries = JournalEntry.objects.count()
    out = StringIO()
    call_command("default_drill", "--member", str(b[0].pk), stdout=out)
    assert out.getvalue().splitlines() == [
        f"Default drill for Berta Supply GmbH (#{b[0].pk})",
        "loss under a 30% move: 5356.80 EUR",
        "  defaulter_margin: 2678.40 EUR",
        "  defaulter_contribution: 2678.40 EUR",
        "nothing was changed"]
    assert JournalEntry.objects.count() == entries
    assert balance(b[0], Account.Kind.MARGIN) == D("2678.40")
    from clearing.reconcile import reconcile

    assert reconcile() == []


def test_a_drill_beyond_the_defaulters_layers_reaches_the_others(world):
    m, a, b, c = world["m"], world["a"], world["b"], world["c"]
    trade(m, a, b, "2.40", 10, at(MON, 17, 10))
    trade(m, c, b, "2.40", 10, at(MON, 17, 12))  # B short 20: loss 10,713.60 under stress
    run_day(MON)
    futures.default_fund_run(day=MON, now=at(MON, 18, 40))
    drill = futures.default_drill(organisation_id=b[0].pk)
    assert drill.loss == D("10713.60")
    # The fund: B's 5,356.80 and one of A's or C's 2,678.40 uncovered = 8,035.20, shared by initial
    # margin 5,356.80 : 2,678.40 : 2,678.40 -> B 4,017.60, A and C 2,008.80 each. The drill: B's
    # margin 5,356.80, its contribution 4,017.60, no fee revenue yet, then 1,339.20 from A and C.
    Layer = futures.core.Layer
    assert drill.layers == [(Layer.MARGIN, D("5356.80")), (Layer.CONTRIBUTION, D("4017.60")),
                            (Layer.OTHERS, D("1339.20"))]
    assert drill.others == {a[0].pk: D("669.60"), c[0].pk: D("669.60")}


def test_a_margin_call_is_mailed_and_shown_on_every_page(world, client, django_capture_on_commit_callbacks):
    from django.core import mail

    m, a = world["m"], world["a"]
    poor = member("Paula Knapp GmbH", cash="3000.00")
    trade(m, a, poor, "2.40", 10, at(MON, 17, 10))
    run_day(MON)
    trade(m, a, world["c"], "2.70", 1, at(TUE, 17, 5))
    with django_capture_on_commit_callbacks(execute=True):
        run_day(TUE)
    assert len(mail.outbox) == 1
    assert "Paula Knapp GmbH" in mail.outbox[0].subject and "2.245,20" in mail.outbox[0].body
    client.force_login(poor[1])
    page = client.get("/").content.decode()
    assert "2.245,20 EUR" in page and "role=\"alert\"" in page
    client.force_login(a[1])
    assert "2.245,20" not in client.get("/").content.decode()


def test_a_call_is_met_when_the_next_run_finds_the_margin_back(world):
    from clearing.services import cash_deposit_book

    m, a = world["m"], world["a"]
    poor = member("Paula Knapp GmbH", cash="3000.00")
    trade(m, a, poor, "2.40", 10, at(MON, 17, 10))
    run_day(MON)
    trade(m, a, world["c"], "2.70", 1, at(TUE, 17, 5))
    run_day(TUE)
    call = MarginCall.objects.get(organisation=poor[0])
    operator = UserFactory(email="olga@operator.example", is_staff=True)
    cash_deposit_book(operator=operator, organisation=poor[0], amount=D("2245.20"), bank_reference="CALL-1")
    trade(m, a, world["c"], "2.70", 1, at(WED, 17, 5))  # Wednesday's DSP stays 2.70
    run_day(WED)
    call.refresh_from_db()
    assert call.met_at is not None
    assert balance(poor[0], Account.Kind.MARGIN) == D("3013.20")
    assert not MarginCall.objects.filter(organisation=poor[0], met_at__isnull=True).exists()


def test_an_operator_overrides_in_admin_with_a_reason(world, admin_client):
    m, a, b = world["m"], world["a"], world["b"]
    trade(m, a, b, "2.40", 10, at(MON, 17, 10))
    futures.settlement_prices_compute(day=MON, now=at(MON, 17, 30))
    row = SettlementPrice.objects.get(date=MON)
    url = "/admin/market/settlementprice/"
    form = admin_client.post(url, {"action": "override", "_selected_action": [row.pk]})
    assert form.status_code == 200 and "2.40" in form.content.decode().replace(",", ".")
    missing = admin_client.post(url, {"action": "override", "_selected_action": [row.pk], "apply": "yes",
                                      "price": "2.55", "reason": ""})
    assert missing.status_code == 200  # the form again, with the error at the field
    SettlementPrice.objects.get(pk=row.pk, price=D("2.40"))
    done = admin_client.post(url, {"action": "override", "_selected_action": [row.pk], "apply": "yes",
                                   "price": "2.55", "reason": "erroneous trade"})
    assert done.status_code == 302
    assert SettlementPrice.objects.get(pk=row.pk).price == D("2.55")
    assert admin_client.get("/admin/market/margincall/").status_code == 200
    assert admin_client.get("/admin/market/variationmargin/").status_code == 200
    assert admin_client.get("/admin/market/defaultfundsize/").status_code == 200


def test_the_board_and_the_margin_page_show_what_the_day_booked(world, client):
    m, a, b = world["m"], world["a"], world["b"]
    trade(m, a, b, "2.40", 10, at(MON, 17, 10))
    run_day(MON)
    client.force_login(a[1])
    board = client.get("/markets/futures/?gpu_class=H100")
    assert board.status_code == 200
    text = board.content.decode()
    assert "H100.DE.M2027-01" in text and "forward-curve-data" in text and "2,40" in text
    page = client.get("/markets/futures/margin/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "2.678,40" in text and "+10" in text  # margin held and the long position
    client.force_login(b[1])
    assert "-10" in client.get("/markets/futures/margin/").content.decode()
    client.logout()
    assert client.get("/markets/futures/").status_code == 302  # login first


def test_settlement_prices_and_the_forward_curve_are_public_as_json_and_csv(world, client):
    from rest_framework.test import APIClient

    m, a, b = world["m"], world["a"], world["b"]
    trade(m, a, b, "2.40", 10, at(MON, 17, 10))
    run_day(MON)
    anonymous = APIClient()
    day = anonymous.get(f"/api/v1/futures/settlement-prices/?gpu_class=H100&date={MON.isoformat()}")
    assert day.status_code == 200
    assert day.json() == [{"symbol": "H100.DE.M2027-01", "date": "2026-12-07", "price": "2.40", "source": "vwap"}]
    curve = anonymous.get("/api/v1/futures/settlement-prices/?format=csv")
    assert curve.status_code == 200 and curve["Content-Type"].startswith("text/csv")
    assert curve.content.decode().splitlines() == ["symbol,date,price,source",
                                                   "H100.DE.M2027-01,2026-12-07,2.40,vwap"]
    bad = anonymous.get("/api/v1/futures/settlement-prices/?date=2026-13-01&format=csv")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"
    assert anonymous.get("/api/v1/margin/").status_code == 401
    member_api = APIClient()
    member_api.force_authenticate(a[1])
    margin = member_api.get("/api/v1/margin/").json()
    assert margin["collateral"] == "2678.40" and margin["margin_call"] is None
    assert set(margin) == {"initial_margin", "maintenance_margin", "collateral", "variation_margin_today",
                           "margin_call", "default_fund_contribution"}


def test_the_public_forward_curve_page_needs_no_login(world, client):
    m, a, b = world["m"], world["a"], world["b"]
    trade(m, a, b, "2.40", 10, at(MON, 17, 10))
    run_day(MON)
    page = client.get("/dashboard/futures/?gpu_class=H100")
    assert page.status_code == 200
    text = page.content.decode()
    assert "H100.DE.M2027-01" in text and "forward-curve-data" in text and "format=csv" in text
    assert "Anna Hedge" not in text and "Berta" not in text  # no member identity
    assert "/dashboard/futures/" in client.get("/dashboard/").content.decode()


def test_the_beat_jobs_wait_for_each_other_and_run_once(world, monkeypatch):
    from django.utils import timezone

    from market import tasks

    m, a, b = world["m"], world["a"], world["b"]
    trade(m, a, b, "2.40", 10, at(MON, 17, 10))
    monkeypatch.setattr(timezone, "now", lambda: at(MON, 17, 20))
    assert tasks.futures_settlement_prices() == 0  # before 17:30
    assert tasks.futures_variation_margin() == 0  # no prices yet
    monkeypatch.setattr(timezone, "now", lambda: at(MON, 18, 20))
    assert tasks.futures_expire() == {}  # no margin run yet
    assert tasks.futures_settlement_prices() == 1
    assert tasks.futures_variation_margin() == 2
    assert tasks.futures_variation_margin() == 0
    assert tasks.futures_default_fund() == "5356.80"
    assert tasks.futures_expire() == {"cascaded": 0, "settled": 0}
