"""Listing, opening/closing, halting: the catalogue services, job, command and admin."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import factory
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import AuditLog
from exchange.errors import ExchangeError
from market import calendar as cal
from market import services
from market.demo import DEMO_CLASSES, seed_market
from market.models import DeliveryZone, GpuClass, Instrument, InstrumentStatus, Segment
from market.tasks import list_and_schedule_instruments

pytestmark = pytest.mark.django_db


def halt_log():
    return AuditLog.objects.filter(object_type="market.Instrument")

S = InstrumentStatus
US = timedelta(microseconds=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class GpuClassFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GpuClass
        django_get_or_create = ("code",)

    code = "H100"
    name = factory.LazyAttribute(lambda o: f"NVIDIA {o.code}")
    memory_gb = 80
    interconnect = "NVLink"
    min_benchmark_value = Decimal("700")
    min_benchmark_unit = "TFLOPS BF16 dense GEMM"
    delivery_standard = "bare_metal"


@pytest.fixture
def h100():
    return GpuClassFactory(code="H100", min_price=Decimal("1.00"), max_price=Decimal("150.00"))


@pytest.fixture
def a100():
    return GpuClassFactory(code="A100")


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_user(email="olga@operator.example", password="x" * 12, is_staff=True)


def listed(now):
    services.instruments_list_upcoming(now=now)
    services.instruments_open_close(now=now)


def get(symbol):
    return Instrument.objects.get(symbol=symbol)


# --- zones and listing -----------------------------------------------------------------


def test_the_migration_seeds_de_and_the_16_states():
    assert sorted(DeliveryZone.objects.values_list("code", flat=True)) == sorted(cal.ZONE_CODES)
    assert DeliveryZone.objects.get(code="DE-BY").name == "Bayern"


# 2026-10-24 10:00 CEST: today's hours 11..23 still trade (13), all 25 of the
# October change day 2026-10-25 are listed.
LISTING_NOW = utc(2026, 10, 24, 8)


def test_listing_creates_intraday_hours_for_all_zones_and_futures_for_de(h100, a100):
    created = services.instruments_list_upcoming(now=LISTING_NOW)

    intraday = Instrument.objects.filter(segment=Segment.INTRADAY)
    futures = Instrument.objects.filter(segment=Segment.FUTURES)
    assert intraday.count() == 2 * 17 * (13 + 25)
    assert futures.count() == 2 * 12
    assert created == intraday.count() + futures.count()
    assert set(futures.values_list("zone__code", flat=True)) == {"DE"}
    assert not intraday.filter(delivery_start__lt=utc(2026, 10, 24, 9)).exists()
    assert intraday.filter(gpu_class=h100, zone__code="DE-BY", delivery_start__date="2026-10-25").count() == 25


def test_an_hourly_instrument_of_the_october_change_day(h100):
    services.instruments_list_upcoming(now=LISTING_NOW)

    b = get("H100.DE-BY.2026-10-25T02B")
    assert b.segment == Segment.INTRADAY
    assert b.period == "2026-10-25T02B"
    assert (b.delivery_start, b.delivery_end, b.hours) == (utc(2026, 10, 25, 1), utc(2026, 10, 25, 2), 1)
    assert b.opens_at == utc(2026, 10, 24, 13)  # 15:00 CEST on D-1
    assert b.closes_at == utc(2026, 10, 25, 0, 30)  # 30 minutes before delivery
    assert (b.min_price, b.max_price) == (Decimal("1.00"), Decimal("150.00"))
    assert (b.tick_size, b.lot_size, b.status) == (Decimal("0.01"), 1, S.SCHEDULED)
    assert get("H100.DE-BY.2026-10-25T02A").delivery_start == utc(2026, 10, 25, 0)
    assert not Instrument.objects.filter(symbol="H100.DE.2026-10-25T02").exists()


def test_futures_instruments(h100):
    services.instruments_list_upcoming(now=LISTING_NOW)

    month = get("H100.DE.M2026-11")
    assert month.segment == Segment.FUTURES
    assert (month.delivery_start, month.delivery_end, month.hours) == (
        utc(2026, 10, 31, 23), utc(2026, 11, 30, 23), 720)
    assert month.opens_at == utc(2026, 4, 30, 22)  # listed since 2026-05-01 local
    assert month.closes_at == month.delivery_start
    assert get("H100.DE.Y2028").hours == 8784
    assert get("H100.DE.Q2027-1").hours == 2159
    # The month in delivery is not listed, nor anything beyond the window.
    assert not Instrument.objects.filter(symbol__in=["H100.DE.M2026-10", "H100.DE.M2027-05",
                                                     "H100.DE.Q2026-4", "H100.DE.Y2026"]).exists()


def test_listing_is_idempotent(h100, a100):
    first = services.instruments_list_upcoming(now=LISTING_NOW)
    count = Instrument.objects.count()

    second = services.instruments_list_upcoming(now=LISTING_NOW)

    assert first > 0
    assert second == 0
    assert Instrument.objects.count() == count


def test_inactive_classes_get_no_new_instruments(h100, a100):
    a100.active = False
    a100.save()

    services.instruments_list_upcoming(now=LISTING_NOW)

    assert not Instrument.objects.filter(gpu_class=a100).exists()
    assert Instrument.objects.filter(gpu_class=h100).exists()


def test_listing_copies_bounds_and_lead_time_at_listing(h100):
    h100.intraday_lead_time_minutes = 60
    h100.save()

    services.instruments_list_upcoming(now=LISTING_NOW)

    # 14:00 CET (after the change) is 13:00 UTC; an hour's lead time closes at 12:00 UTC.
    instrument = get("H100.DE.2026-10-25T14")
    assert (instrument.closes_at, instrument.lead_time_minutes) == (utc(2026, 10, 25, 12), 60)
    assert (instrument.min_price, instrument.max_price) == (Decimal("1.00"), Decimal("150.00"))


# --- opening and closing at the exact boundaries -----------------------------------------

# H100.DE.2026-11-29T14 opens 2026-11-28 15:00 CET and closes 2026-11-29 13:30 CET.
HOUR_14 = "H100.DE.2026-11-29T14"
OPENS = utc(2026, 11, 28, 14)
CLOSES = utc(2026, 11, 29, 12, 30)


@pytest.fixture
def hour_14(h100):
    services.instruments_list_upcoming(now=utc(2026, 11, 28, 11))
    instrument = get(HOUR_14)
    assert (instrument.opens_at, instrument.closes_at) == (OPENS, CLOSES)
    return instrument


def status_after_run(now):
    services.instruments_open_close(now=now)
    return get(HOUR_14).status


def test_open_and_close_at_the_exact_boundaries(hour_14):
    assert status_after_run(OPENS - US) == S.SCHEDULED
    assert status_after_run(OPENS) == S.OPEN
    assert status_after_run(CLOSES - US) == S.OPEN
    assert status_after_run(CLOSES) == S.CLOSED


def test_open_close_counts_and_repeated_runs(hour_14):
    opened, closed = services.instruments_open_close(now=OPENS)
    # Listed at 12:00 CET: today's hours 13..23 and tomorrow's 24, in 17 zones.
    # At 15:00 CET hours 13, 14 and 15 have closed (lead time 30 minutes);
    # 16..23, all of tomorrow and the 12 futures are open.
    assert opened == 17 * (8 + 24) + 12
    assert closed == 17 * 3
    assert services.instruments_open_close(now=OPENS) == (0, 0)


def test_a_scheduled_instrument_whose_window_passed_is_closed_not_opened(hour_14):
    assert status_after_run(CLOSES + timedelta(hours=1)) == S.CLOSED


def test_closed_instruments_stay_closed(hour_14):
    status_after_run(CLOSES)

    assert status_after_run(OPENS) == S.CLOSED  # even a run with an earlier clock
    assert status_after_run(CLOSES + timedelta(days=1)) == S.CLOSED


def test_the_job_never_reopens_a_halted_instrument_but_closes_it(hour_14, operator):
    status_after_run(OPENS)
    services.instrument_halt(operator=operator, instrument=hour_14, reason="Matching incident")

    assert status_after_run(OPENS + timedelta(hours=1)) == S.HALTED
    assert status_after_run(CLOSES) == S.CLOSED


def test_a_halted_scheduled_instrument_does_not_open(hour_14, operator):
    services.instrument_halt(operator=operator, instrument=hour_14, reason="Provider outage in zone")

    assert status_after_run(OPENS) == S.HALTED


# --- halt and resume ------------------------------------------------------------------


def test_halt_and_resume_inside_the_window_are_logged(hour_14, operator):
    status_after_run(OPENS)

    halted = services.instrument_halt(operator=operator, instrument=hour_14, reason="  Price feed stale  ")
    resumed = services.instrument_resume(operator=operator, instrument=hour_14, reason="Feed back",
                                         now=OPENS + timedelta(hours=1))

    assert halted.status == S.HALTED
    assert resumed.status == S.OPEN
    assert get(HOUR_14).status == S.OPEN
    log = list(halt_log().order_by("id").values_list("action", "actor__email", "object_id", "reason", "before",
                                                     "after", "organisation"))
    assert log == [
        ("instrument.halt", "olga@operator.example", str(hour_14.pk), "Price feed stale",
         {"status": "open", "symbol": HOUR_14}, {"status": "halted", "symbol": HOUR_14}, None),
        ("instrument.resume", "olga@operator.example", str(hour_14.pk), "Feed back",
         {"status": "halted", "symbol": HOUR_14}, {"status": "open", "symbol": HOUR_14}, None),
    ]


@pytest.mark.parametrize(("now", "status"), [
    (OPENS - US, S.SCHEDULED),
    (OPENS, S.OPEN),
    (CLOSES - US, S.OPEN),
    (CLOSES, S.CLOSED),
])
def test_resume_returns_to_what_the_clock_says(hour_14, operator, now, status):
    services.instrument_halt(operator=operator, instrument=hour_14, reason="Check")

    assert services.instrument_resume(operator=operator, instrument=hour_14, reason="OK", now=now).status == status


def test_halt_and_resume_refuse_what_they_cannot_do(hour_14, operator):
    with pytest.raises(ExchangeError) as error:
        services.instrument_resume(operator=operator, instrument=hour_14, reason="x")
    assert error.value.code == "conflict"

    services.instrument_halt(operator=operator, instrument=hour_14, reason="x")
    with pytest.raises(ExchangeError) as error:
        services.instrument_halt(operator=operator, instrument=hour_14, reason="x")
    assert error.value.code == "conflict"

    status_after_run(CLOSES)
    with pytest.raises(ExchangeError) as error:
        services.instrument_halt(operator=operator, instrument=hour_14, reason="x")
    assert error.value.code == "instrument_closed"
    assert get(HOUR_14).status == S.CLOSED
    assert halt_log().count() == 1


def test_halt_needs_a_reason_and_an_operator(hour_14, operator, django_user_model):
    with pytest.raises(ExchangeError) as error:
        services.instrument_halt(operator=operator, instrument=hour_14, reason="   ")
    assert error.value.code == "invalid"
    assert "reason" in error.value.fields

    member = django_user_model.objects.create_user(email="alice@member.example", password="x" * 12)
    with pytest.raises(ExchangeError) as error:
        services.instrument_halt(operator=member, instrument=hour_14, reason="Because")
    assert error.value.code == "not_permitted"

    assert get(HOUR_14).status == S.SCHEDULED
    assert not halt_log().exists()


def test_accepts_orders_only_inside_the_window_and_futures_only_in_session(hour_14):
    status_after_run(OPENS)
    instrument = get(HOUR_14)
    assert instrument.accepts_orders_at(OPENS)
    # The job may lag: past closes_at no order gets in, whatever the status says.
    assert instrument.status == S.OPEN
    assert not instrument.accepts_orders_at(CLOSES)

    future = get("H100.DE.M2027-01")
    assert future.status == S.OPEN
    assert future.accepts_orders_at(utc(2026, 11, 30, 9))  # Monday 10:00 CET
    assert not future.accepts_orders_at(utc(2026, 11, 28, 15))  # Saturday


# --- class edits --------------------------------------------------------------------------


def test_new_bounds_reach_scheduled_instruments_but_not_open_ones(hour_14):
    status_after_run(OPENS)  # tomorrow's hours are open now
    later_day = "H100.DE.2026-11-30T14"
    services.instruments_list_upcoming(now=utc(2026, 11, 29, 11))
    assert get(later_day).status == S.SCHEDULED

    h100 = GpuClass.objects.get(code="H100")
    h100.max_price = Decimal("120.00")
    h100.intraday_lead_time_minutes = 60
    updated = services.gpu_class_save(gpu_class=h100)

    assert updated == Instrument.objects.filter(gpu_class=h100, status=S.SCHEDULED).count() > 0
    assert get(later_day).max_price == Decimal("120.00")
    assert get(later_day).closes_at == utc(2026, 11, 30, 12)
    assert get(HOUR_14).max_price == Decimal("150.00")
    assert get(HOUR_14).closes_at == CLOSES


def test_class_bounds_must_be_ordered(h100):
    from django.core.exceptions import ValidationError

    h100.min_price = Decimal("10.00")
    h100.max_price = Decimal("5.00")
    with pytest.raises(ValidationError):
        services.gpu_class_save(gpu_class=h100)


# --- job, command and demo -----------------------------------------------------------


def test_the_celery_task_lists_and_is_idempotent(h100):
    first = list_and_schedule_instruments()
    second = list_and_schedule_instruments()

    assert first["listed"] > 0
    assert second["listed"] == 0
    assert Instrument.objects.filter(status=S.OPEN, segment=Segment.FUTURES).count() == 12


def test_the_command_runs_the_job_once_at_a_given_time(h100):
    out = StringIO()
    with translation.override("en"):
        call_command("list_instruments", "--at", "2026-11-28T15:00+01:00", stdout=out)

    assert get(HOUR_14).status == S.OPEN
    assert out.getvalue() == f"{17 * (8 + 24) + 12} listed, {17 * (8 + 24) + 12} opened, 0 closed.\n"


def test_the_command_refuses_a_time_without_offset(h100):
    with pytest.raises(CommandError):
        call_command("list_instruments", "--at", "2026-11-28T15:00")
    assert not Instrument.objects.exists()


def test_seed_market_creates_the_demo_classes_and_lists_idempotently():
    now = utc(2026, 11, 28, 11)  # 12:00 CET: today's hours 13..23 still trade
    first = seed_market(now=now)
    count = Instrument.objects.count()
    second = seed_market(now=now)

    assert sorted(GpuClass.objects.values_list("code", flat=True)) == sorted(c["code"] for c in DEMO_CLASSES)
    assert GpuClass.objects.get(code="H100").name == "NVIDIA H100 SXM5 80 GB"
    assert first.classes_created == 5
    assert count == first.instruments_listed == 5 * (17 * (11 + 24) + 12)
    assert (second.classes_created, second.instruments_listed) == (0, 0)
    assert Instrument.objects.count() == count


# --- admin ------------------------------------------------------------------------------


def action_post(client, action, instruments, follow=False, **fields):
    return client.post(reverse("admin:market_instrument_changelist"), {
        "action": action, "_selected_action": [i.pk for i in instruments], **fields,
    }, follow=follow)


def test_admin_halt_asks_for_a_reason_first(admin_client, hour_14):
    response = action_post(admin_client, "halt", [hour_14])

    assert response.status_code == 200
    assert "admin/market/instrument/status_action.html" in [t.name for t in response.templates]
    assert HOUR_14 in response.content.decode()
    assert get(HOUR_14).status == S.SCHEDULED


def test_admin_halt_refuses_a_blank_reason(admin_client, hour_14):
    response = action_post(admin_client, "halt", [hour_14], apply="yes", reason="   ")

    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    assert get(HOUR_14).status == S.SCHEDULED
    assert not halt_log().exists()


def test_admin_halt_and_resume_with_a_reason_call_the_services(admin_client, admin_user, h100):
    # Resume asks the real clock, so use futures listed now: open for months.
    now = timezone.now()
    listed(now)
    front, back = (get(f"H100.DE.{cal.period_code(p)}") for p in cal.listed_futures(
        now.astimezone(cal.BERLIN).date())[:2])
    assert front.status == back.status == S.OPEN

    response = action_post(admin_client, "halt", [front, back], apply="yes", reason="Index provider down")

    assert response.status_code == 302
    assert get(front.symbol).status == get(back.symbol).status == S.HALTED
    entry = halt_log().get(object_id=str(front.pk))
    assert (entry.actor, entry.reason, entry.action) == (admin_user, "Index provider down", "instrument.halt")

    response = action_post(admin_client, "resume", [front], apply="yes", reason="Resolved")

    assert response.status_code == 302
    assert get(front.symbol).status == S.OPEN
    assert get(back.symbol).status == S.HALTED
    assert halt_log().filter(action="instrument.resume", reason="Resolved", actor=admin_user).count() == 1


def test_admin_reports_instruments_it_could_not_halt(admin_client, hour_14):
    status_after_run(CLOSES)

    response = action_post(admin_client, "halt", [hour_14], apply="yes", reason="Too late", follow=True)

    assert get(HOUR_14).status == S.CLOSED
    assert any(HOUR_14 in str(m) for m in response.context["messages"])


def test_admin_instrument_pages_render(admin_client, hour_14):
    assert admin_client.get(reverse("admin:market_instrument_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:market_instrument_change", args=[hour_14.pk])).status_code == 200
    assert admin_client.get(reverse("admin:market_gpuclass_change", args=[hour_14.gpu_class_id])).status_code == 200
    assert admin_client.get(reverse("admin:market_deliveryzone_changelist")).status_code == 200


def test_admin_class_edit_carries_new_bounds_to_scheduled_instruments(admin_client, hour_14):
    status_after_run(OPENS)  # tomorrow's hours are open, the day after is not listed yet
    services.instruments_list_upcoming(now=utc(2026, 11, 29, 11))
    later = "H100.DE.2026-11-30T14"
    h100 = GpuClass.objects.get(code="H100")
    form = {field: getattr(h100, field) for field in (
        "name", "memory_gb", "interconnect", "min_benchmark_value", "min_benchmark_unit", "delivery_standard",
        "min_price", "initial_margin_rate", "intraday_lead_time_minutes")}

    response = admin_client.post(reverse("admin:market_gpuclass_change", args=[h100.pk]),
                                 {**form, "active": "on", "max_price": "99.50"})

    assert response.status_code == 302
    assert GpuClass.objects.get(code="H100").max_price == Decimal("99.50")
    assert get(later).max_price == Decimal("99.50")
    assert get(HOUR_14).max_price == Decimal("150.00")  # open: keeps its bounds


def test_admin_class_edit_refuses_crossed_bounds(admin_client, h100):
    form = {field: getattr(h100, field) for field in (
        "name", "memory_gb", "interconnect", "min_benchmark_value", "min_benchmark_unit", "delivery_standard",
        "initial_margin_rate", "intraday_lead_time_minutes")}

    response = admin_client.post(reverse("admin:market_gpuclass_change", args=[h100.pk]),
                                 {**form, "min_price": "10.00", "max_price": "5.00"})

    assert response.status_code == 200
    assert "max_price" in response.context["adminform"].form.errors
    assert GpuClass.objects.get(code="H100").max_price == Decimal("150.00")


def test_halting_needs_the_halt_permission(client, django_user_model, hour_14):
    from django.contrib.auth.models import Permission

    clerk = django_user_model.objects.create_user(email="carl@operator.example", password="x" * 12, is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_instrument"))
    client.force_login(clerk)

    page = client.get(reverse("admin:market_instrument_changelist"))
    response = action_post(client, "halt", [hour_14], apply="yes", reason="Not mine to halt")

    assert page.status_code == 200
    assert page.context["action_form"] is None  # no action offered at all
    assert response.status_code in (200, 302)
    assert get(HOUR_14).status == S.SCHEDULED
    assert not halt_log().exists()
