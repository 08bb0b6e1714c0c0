"""Provider capacity: the site services, the pre-trade capacity check, the
overview the provider screen shows, and the demo sites.

Actors: Alice is owner, trader and provider of Alice Rechenwerk (approved);
Bob trades in Alice's organisation but is no provider; Charlie provides for
another organisation and must never touch Alice's sites. Orders and
positions are written directly with the ORM: the order service is built in
parallel and is not what is tested here.
"""

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone, translation

from accounts.demo import seed_accounts
from accounts.models import AuditLog, KycCase, Organisation, User
from exchange.errors import ExchangeError
from market import calendar
from market.demo import seed_sites
from market.models import (
    DeliveryZone,
    EnergySource,
    GpuClass,
    Instrument,
    InstrumentStatus,
    Order,
    OrderStatus,
    Position,
    Segment,
    Side,
    Site,
    SiteCapacity,
)
from market.selectors.capacity import capacity_overview, sites_for
from market.services import capacity_check, site_capacity_set, site_create, site_update
from tests.factories import (
    GpuClassFactory,
    HourInstrumentFactory,
    MembershipFactory,
    OrganisationFactory,
    SiteCapacityFactory,
    SiteFactory,
    UserFactory,
    delivery_hour,
)

pytestmark = pytest.mark.django_db

APPROVED = KycCase.Status.APPROVED


# --- actors ------------------------------------------------------------------------------


@pytest.fixture
def org_a() -> Organisation:
    return OrganisationFactory(legal_name="Alice Rechenwerk GmbH", kyc__status=APPROVED)


@pytest.fixture
def org_c() -> Organisation:
    return OrganisationFactory(legal_name="Charlie Cloud AG", kyc__status=APPROVED)


@pytest.fixture
def alice(org_a: Organisation) -> User:
    user = UserFactory(email="alice@example.com")
    MembershipFactory(user=user, organisation=org_a, is_owner=True, is_trader=True, is_provider=True)
    return user


@pytest.fixture
def bob(org_a: Organisation, alice: User) -> User:
    user = UserFactory(email="bob@example.com")
    MembershipFactory(user=user, organisation=org_a, is_trader=True, is_provider=False)
    return user


@pytest.fixture
def charlie(org_c: Organisation) -> User:
    user = UserFactory(email="charlie@example.com")
    MembershipFactory(user=user, organisation=org_c, is_owner=True, is_trader=True, is_provider=True)
    return user


@pytest.fixture
def h100() -> GpuClass:
    return GpuClassFactory(code="H100")


@pytest.fixture
def a100() -> GpuClass:
    return GpuClassFactory(code="A100")


def site_args(**overrides: object) -> dict[str, object]:
    return {"name": "München Nord", "state": "DE-BY", "energy_source": EnergySource.RENEWABLE,
            "pue": Decimal("1.25"), **overrides}


def hour_instrument(gpu_class: GpuClass, zone: str, label: str = "14", days_ahead: int = 1) -> Instrument:
    return HourInstrumentFactory(gpu_class=gpu_class, zone_code=zone, hour=delivery_hour(days_ahead, label))


_priority = iter(range(1, 10_000))


def sell(organisation: Organisation, instrument: Instrument, quantity: int, *, filled: int = 0,
         status: str = OrderStatus.OPEN, side: str = Side.SELL) -> Order:
    placed_by = User.objects.filter(membership__organisation=organisation).first() or UserFactory()
    return Order.objects.create(
        instrument=instrument, organisation=organisation, placed_by=placed_by, side=side, price=Decimal("10.00"),
        quantity=quantity, filled_quantity=filled, status=status, priority=next(_priority),
    )


def position(organisation: Organisation, instrument: Instrument, *, bought: int = 0, sold: int = 0) -> Position:
    return Position.objects.create(organisation=organisation, instrument=instrument, quantity=bought - sold,
                                   bought=bought, sold=sold)


def month_future(gpu_class: GpuClass) -> Instrument:
    """The DE base future of January 2027."""
    period = calendar.FuturesPeriod("M", 2027, 1)
    start, end = calendar.period_interval(period)
    return Instrument.objects.create(
        symbol=calendar.format_symbol(gpu_class.code, "DE", period), segment=Segment.FUTURES, gpu_class=gpu_class,
        zone=DeliveryZone.objects.get(code="DE"), period=calendar.period_code(period), delivery_start=start,
        delivery_end=end, hours=calendar.period_hours(period), min_price=0, max_price=200,
        opens_at=start - timedelta(days=180), closes_at=start, status=InstrumentStatus.OPEN,
    )


def refused(code: str, call, *args, **kwargs) -> ExchangeError:  # type: ignore[no-untyped-def]
    with pytest.raises(ExchangeError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value
    return caught.value


# --- sites -----------------------------------------------------------------------------


def test_a_provider_creates_a_site_of_its_organisation_and_it_is_audited(alice, org_a):
    site = site_create(user=alice, **site_args(name="  München Nord  "))
    site.refresh_from_db()
    assert (site.organisation, site.name, site.state, site.pue) == (org_a, "München Nord", "DE-BY", Decimal("1.25"))
    log = AuditLog.objects.get(action="site.create")
    assert (log.actor, log.organisation, log.object_id) == (alice, org_a, str(site.pk))
    assert log.after["name"] == "München Nord"


def test_a_trader_without_the_provider_role_may_not_create_a_site(bob):
    error = refused("not_permitted", site_create, user=bob, **site_args())
    assert error.status == 403
    assert not Site.objects.exists()
    assert not AuditLog.objects.exists()


def test_an_organisation_not_yet_approved_may_not_create_a_site():
    user = UserFactory()
    MembershipFactory(user=user, organisation=OrganisationFactory(kyc__status=KycCase.Status.SUBMITTED),
                      is_owner=True, is_provider=True)
    refused("kyc_not_approved", site_create, user=user, **site_args())
    assert not Site.objects.exists()


@pytest.mark.parametrize("pue", [Decimal("0.99"), Decimal("3.01"), "1.234", "viel", Decimal("-1")])
def test_a_pue_outside_1_to_3_or_not_a_number_is_refused_at_the_field(alice, pue):
    error = refused("invalid", site_create, user=alice, **site_args(pue=pue))
    assert list(error.fields) == ["pue"]
    assert error.fields["pue"][0]
    assert not Site.objects.exists()
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize("pue", [Decimal("1.00"), Decimal("3.00"), "1.5"])
def test_the_pue_bounds_are_inclusive(alice, pue):
    assert site_create(user=alice, **site_args(pue=pue)).pk


def test_a_duplicate_site_name_is_refused_at_the_field_but_other_organisations_may_use_it(alice, charlie):
    site_create(user=alice, **site_args(name="München Nord"))
    error = refused("invalid", site_create, user=alice, **site_args(name="münchen nord", state="DE-BW"))
    assert list(error.fields) == ["name"]
    assert Site.objects.count() == 1
    assert site_create(user=charlie, **site_args(name="München Nord")).organisation.legal_name == "Charlie Cloud AG"


def test_blank_name_unknown_state_and_energy_source_are_named_at_their_fields(alice):
    error = refused("invalid", site_create, user=alice, name=" ", state="DE-XX", energy_source="coal",
                    pue=Decimal("1.2"))
    assert set(error.fields) == {"name", "state", "energy_source"}
    assert not Site.objects.exists()


def test_site_update_changes_the_details_and_records_before_and_after(alice):
    site = site_create(user=alice, **site_args())
    site_update(user=alice, site=site, **site_args(name="München Süd", pue="1.40",
                                                   energy_source=EnergySource.GRID_MIX))
    site.refresh_from_db()
    assert (site.name, site.pue, site.energy_source) == ("München Süd", Decimal("1.40"), "grid_mix")
    log = AuditLog.objects.get(action="site.update")
    assert (log.before["name"], log.after["name"]) == ("München Nord", "München Süd")


def test_nobody_else_can_update_or_fill_alices_site(alice, charlie, h100):
    site = site_create(user=alice, **site_args())
    refused("not_found", site_update, user=charlie, site=site, **site_args(name="Meins"))
    refused("not_found", site_capacity_set, user=charlie, site=site, gpu_class=h100, gpus=10)
    site.refresh_from_db()
    assert site.name == "München Nord"
    assert not SiteCapacity.objects.exists()


# --- capacity of a site ----------------------------------------------------------------


def test_capacity_is_set_changed_and_removed_with_zero(alice, h100):
    site = site_create(user=alice, **site_args())
    first = site_capacity_set(user=alice, site=site, gpu_class=h100, gpus=64)
    assert SiteCapacity.objects.get(site=site, gpu_class=h100).gpus == 64
    again = site_capacity_set(user=alice, site=site, gpu_class=h100, gpus=128)
    assert again.pk == first.pk and SiteCapacity.objects.get(pk=first.pk).gpus == 128
    removed = site_capacity_set(user=alice, site=site, gpu_class=h100, gpus=0)
    assert removed.gpus == 0 and removed.pk is None
    assert not SiteCapacity.objects.exists()
    changes = [(log.before["gpus"], log.after["gpus"]) for log in AuditLog.objects.filter(
        action="site_capacity.set").order_by("pk")]
    assert changes == [(0, 64), (64, 128), (128, 0)]


@pytest.mark.parametrize("gpus", [-1, 1_000_001, True])
def test_an_impossible_number_of_gpus_is_refused_at_the_field(alice, h100, gpus):
    site = site_create(user=alice, **site_args())
    error = refused("invalid", site_capacity_set, user=alice, site=site, gpu_class=h100, gpus=gpus)
    assert list(error.fields) == ["gpus"]
    assert not SiteCapacity.objects.exists()


def test_no_new_capacity_in_a_class_that_is_no_longer_traded(alice):
    retired = GpuClassFactory(code="V100", active=False)
    site = site_create(user=alice, **site_args())
    error = refused("invalid", site_capacity_set, user=alice, site=site, gpu_class=retired, gpus=8)
    assert list(error.fields) == ["gpu_class"]


def test_a_reduction_below_what_is_sold_or_offered_is_refused(alice, org_a, h100):
    site = site_create(user=alice, **site_args())
    site_capacity_set(user=alice, site=site, gpu_class=h100, gpus=10)
    de = hour_instrument(h100, "DE")
    sell(org_a, de, 6)
    position(org_a, hour_instrument(h100, "DE-BY"), sold=2)  # 8 committed in the hour
    with translation.override("en"):
        error = refused("insufficient_capacity", site_capacity_set, user=alice, site=site, gpu_class=h100, gpus=7)
    assert error.status == 409
    assert error.fields["gpus"][0].startswith("At least 8 GPUs are needed here: for hour 14 on ")
    assert SiteCapacity.objects.get(site=site).gpus == 10
    # Down to exactly what is committed is fine, and so is any increase.
    site_capacity_set(user=alice, site=site, gpu_class=h100, gpus=8)
    site_capacity_set(user=alice, site=site, gpu_class=h100, gpus=9)
    assert SiteCapacity.objects.get(site=site).gpus == 9


def test_the_refusal_names_the_smallest_capacity_of_this_site_that_still_delivers(alice, org_a, h100):
    munich = site_create(user=alice, **site_args(name="München"))
    garching = site_create(user=alice, **site_args(name="Garching"))
    site_capacity_set(user=alice, site=munich, gpu_class=h100, gpus=10)
    site_capacity_set(user=alice, site=garching, gpu_class=h100, gpus=5)
    sell(org_a, hour_instrument(h100, "DE", label="08"), 12)
    sell(org_a, hour_instrument(h100, "DE-BY", label="20"), 9)
    with translation.override("en"):
        error = refused("insufficient_capacity", site_capacity_set, user=alice, site=munich, gpu_class=h100, gpus=0)
    # Garching's 5 leave 7 of the 12 sold at 08 to Munich.
    assert error.fields["gpus"][0].startswith("At least 7 GPUs are needed here: for hour 08 on ")
    site_capacity_set(user=alice, site=munich, gpu_class=h100, gpus=7)
    assert SiteCapacity.objects.get(site=munich).gpus == 7


def test_a_reduction_is_refused_while_delivery_runs_but_not_after_it_ended(alice, org_a, h100):
    site = site_create(user=alice, **site_args())
    site_capacity_set(user=alice, site=site, gpu_class=h100, gpus=10)
    yesterday = hour_instrument(h100, "DE", days_ahead=-1)
    position(org_a, yesterday, sold=10)
    site_capacity_set(user=alice, site=site, gpu_class=h100, gpus=0)  # yesterday's delivery is over
    site_capacity_set(user=alice, site=site, gpu_class=h100, gpus=10)
    now = calendar.hour_at(timezone.now())
    running = HourInstrumentFactory(gpu_class=h100, zone_code="DE", hour=now, status=InstrumentStatus.CLOSED)
    position(org_a, running, sold=3)
    refused("insufficient_capacity", site_capacity_set, user=alice, site=site, gpu_class=h100, gpus=2)


def test_moving_a_site_to_another_state_is_refused_while_that_states_sales_need_it(alice, org_a, h100):
    bavaria = site_create(user=alice, **site_args(name="Bayern"))
    site_capacity_set(user=alice, site=bavaria, gpu_class=h100, gpus=10)
    sell(org_a, hour_instrument(h100, "DE-BY"), 4)
    error = refused("insufficient_capacity", site_update, user=alice, site=bavaria, **site_args(name="Bayern",
                                                                                             state="DE-NW"))
    assert list(error.fields) == ["state"]
    assert Site.objects.get(pk=bavaria.pk).state == "DE-BY"
    # A DE sale may be delivered from any state: then the move is fine.
    Order.objects.update(status=OrderStatus.CANCELLED)
    sell(org_a, hour_instrument(h100, "DE"), 10)
    site_update(user=alice, site=bavaria, **site_args(name="Bayern", state="DE-NW"))
    assert Site.objects.get(pk=bavaria.pk).state == "DE-NW"


# --- the pre-trade capacity check --------------------------------------------------------


@pytest.fixture
def alice_sites(alice, h100) -> dict[str, Site]:
    """10 H100 in Bavaria, 4 in North Rhine-Westphalia."""
    bavaria = site_create(user=alice, **site_args(name="München"))
    rhine = site_create(user=alice, **site_args(name="Köln", state="DE-NW"))
    site_capacity_set(user=alice, site=bavaria, gpu_class=h100, gpus=10)
    site_capacity_set(user=alice, site=rhine, gpu_class=h100, gpus=4)
    return {"DE-BY": bavaria, "DE-NW": rhine}


def accepts(organisation: Organisation, instrument: Instrument, quantity: int) -> bool:
    try:
        capacity_check(organisation=organisation, instrument=instrument, quantity=quantity)
    except ExchangeError as error:
        assert error.code == "insufficient_capacity"
        assert error.status == 409
        assert list(error.fields) == ["quantity"]
        return False
    return True


def largest_accepted(organisation: Organisation, instrument: Instrument) -> int:
    quantity = 0
    while accepts(organisation, instrument, quantity + 1):
        quantity += 1
    return quantity


def test_a_de_sell_is_backed_by_any_state(org_a, alice_sites, h100):
    assert largest_accepted(org_a, hour_instrument(h100, "DE")) == 14


def test_a_state_sell_only_by_that_states_capacity(org_a, alice_sites, h100):
    assert largest_accepted(org_a, hour_instrument(h100, "DE-BY")) == 10
    assert largest_accepted(org_a, hour_instrument(h100, "DE-NW")) == 4
    assert largest_accepted(org_a, hour_instrument(h100, "DE-BE")) == 0


def test_the_refusal_names_the_free_quantity(org_a, alice_sites, h100):
    instrument = hour_instrument(h100, "DE-BY")
    error = refused("insufficient_capacity", capacity_check, organisation=org_a, instrument=instrument, quantity=11)
    assert "10" in error.detail and instrument.symbol in error.detail
    assert "10" in error.fields["quantity"][0]


def test_open_sells_of_the_same_hour_count_in_every_zone(org_a, alice_sites, h100):
    sell(org_a, hour_instrument(h100, "DE"), 12)
    # 12 in DE leave 2 in total: Bavaria and NRW each could take them.
    assert largest_accepted(org_a, hour_instrument(h100, "DE")) == 2
    assert largest_accepted(org_a, hour_instrument(h100, "DE-BY")) == 2
    assert largest_accepted(org_a, hour_instrument(h100, "DE-NW")) == 2


def test_state_sells_bind_their_state_and_the_total(org_a, alice_sites, h100):
    sell(org_a, hour_instrument(h100, "DE-BY"), 7, filled=2, status=OrderStatus.PARTIALLY_FILLED)  # 5 rest
    position(org_a, hour_instrument(h100, "DE-BY"), sold=2)  # the filled part is sold: still committed
    assert largest_accepted(org_a, hour_instrument(h100, "DE-BY")) == 3
    assert largest_accepted(org_a, hour_instrument(h100, "DE")) == 7
    assert largest_accepted(org_a, hour_instrument(h100, "DE-NW")) == 4


def test_only_resting_sells_of_this_organisation_class_and_hour_count(org_a, org_c, alice_sites, h100, a100):
    de = hour_instrument(h100, "DE")
    sell(org_a, de, 5, status=OrderStatus.CANCELLED)
    sell(org_a, de, 5, filled=5, status=OrderStatus.FILLED)  # no position row: e.g. resold; not resting anyway
    sell(org_a, de, 5, side=Side.BUY)
    sell(org_c, de, 9)
    sell(org_a, hour_instrument(h100, "DE", label="15"), 14)
    sell(org_a, hour_instrument(a100, "DE"), 3)
    assert largest_accepted(org_a, de) == 14


def test_a_net_short_position_is_committed_and_a_long_one_may_be_resold(org_a, alice_sites, h100):
    bavaria = hour_instrument(h100, "DE-BY")
    position(org_a, bavaria, bought=1, sold=6)  # net -5: 5 must be delivered
    assert largest_accepted(org_a, bavaria) == 5
    Position.objects.all().delete()
    position(org_a, bavaria, bought=6)  # net +6: resold without touching the sites
    assert largest_accepted(org_a, bavaria) == 16
    sell(org_a, bavaria, 4)  # 4 of the 6 offered again
    assert largest_accepted(org_a, bavaria) == 12


def test_resale_of_a_long_position_needs_no_capacity(org_c, h100):
    instrument = hour_instrument(h100, "DE-HH")
    position(org_c, instrument, bought=6)
    assert largest_accepted(org_c, instrument) == 6
    error = refused("insufficient_capacity", capacity_check, organisation=org_c, instrument=instrument, quantity=7)
    assert "6" in error.fields["quantity"][0]


def test_without_any_capacity_the_refusal_says_so(org_c, h100):
    error = refused("insufficient_capacity", capacity_check, organisation=org_c,
                    instrument=hour_instrument(h100, "DE"), quantity=1)
    with translation.override("en"):
        error = refused("insufficient_capacity", capacity_check, organisation=org_c,
                        instrument=hour_instrument(h100, "DE"), quantity=1)
    assert "no registered capacity" in error.detail


def test_futures_need_no_capacity_and_no_query(org_c, h100, django_assert_num_queries):
    future = month_future(h100)
    with django_assert_num_queries(0):
        capacity_check(organisation=org_c, instrument=future, quantity=1_000)


def test_the_check_reads_with_two_queries(org_a, alice_sites, h100, django_assert_num_queries):
    instrument = hour_instrument(h100, "DE-BY")
    sell(org_a, hour_instrument(h100, "DE"), 3)
    position(org_a, instrument, bought=2)
    with django_assert_num_queries(2):
        capacity_check(organisation=org_a, instrument=instrument, quantity=1)


def test_the_futures_instrument_of_a_month_starting_at_the_hour_is_not_counted(org_a, alice_sites, h100):
    # M2027-01 starts at 2027-01-01 00:00 local, exactly like that day's hour 00.
    hour = calendar.delivery_hour(date(2027, 1, 1), "00")
    hourly = HourInstrumentFactory(gpu_class=h100, zone_code="DE", hour=hour)
    future = month_future(h100)
    assert future.delivery_start == hour.start
    position(org_a, future, sold=100)
    assert largest_accepted(org_a, hourly) == 14


# --- the overview of the provider screen -------------------------------------------------


def test_the_overview_shows_committed_and_free_per_zone_and_hour(org_a, alice_sites, h100):
    hour = delivery_hour(1, "14")
    sell(org_a, hour_instrument(h100, "DE"), 12)
    overview = capacity_overview(organisation=org_a, day=hour.day)
    [h100_view] = overview.classes
    assert h100_view.gpu_class == "H100" and h100_view.registered == 14
    assert [(z.zone, z.registered) for z in h100_view.zones] == [("DE", 14), ("DE-BY", 10), ("DE-NW", 4)]
    rows = {row.hour.label: row for row in h100_view.rows}
    assert [(c.zone, c.committed, c.free) for c in rows["14"].cells] == [
        ("DE", 12, 2), ("DE-BY", 0, 2), ("DE-NW", 0, 2)]
    assert [(c.zone, c.committed, c.free) for c in rows["13"].cells] == [
        ("DE", 0, 14), ("DE-BY", 0, 10), ("DE-NW", 0, 4)]
    assert all(row.feasible for row in h100_view.rows)


def test_the_overview_names_the_repeated_october_hour(org_a, alice_sites):
    overview = capacity_overview(organisation=org_a, day=date(2026, 10, 25))
    rows = overview.classes[0].rows
    assert len(rows) == 25
    labels = [row.hour.label for row in rows]
    assert labels[:4] == ["00", "01", "02A", "02B"]
    with translation.override("en"):
        assert (rows[2].local_range, rows[3].local_range) == ("02:00–03:00 CEST", "02:00–03:00 CET")
    with translation.override("de"):
        assert rows[2].local_range == "02:00–03:00 MESZ"
    spring = capacity_overview(organisation=org_a, day=date(2026, 3, 29)).classes[0].rows
    assert len(spring) == 23 and spring[1].local_range == "01:00–03:00"


def test_the_overview_flags_an_over_committed_hour_and_shows_state_commitments(org_a, h100):
    # Not reachable through the services (they refuse it), but the screen must
    # show it plainly if data ever get there.
    site = SiteFactory(organisation=org_a, state="DE-BY")
    SiteCapacityFactory(site=site, gpu_class=h100, gpus=2)
    hour = delivery_hour(1, "09")
    position(org_a, hour_instrument(h100, "DE-SN", label="09"), sold=3)
    [view] = capacity_overview(organisation=org_a, day=hour.day).classes
    row = next(row for row in view.rows if row.hour.label == "09")
    assert not row.feasible
    assert [(c.zone, c.committed, c.free) for c in row.cells] == [("DE", 0, 0), ("DE-BY", 0, 0), ("DE-SN", 3, 0)]


def test_the_overview_is_empty_without_capacity_or_commitments(org_c):
    assert capacity_overview(organisation=org_c, day=delivery_hour().day).classes == []


def test_sites_for_lists_only_the_organisations_sites_with_their_capacity(alice_sites, org_a, org_c, h100):
    SiteCapacityFactory(site=SiteFactory(organisation=org_c), gpu_class=h100)
    sites = sites_for(organisation=org_a)
    assert [site.name for site in sites] == ["Köln", "München"]
    assert [[c.gpus for c in site.capacities.all()] for site in sites] == [[4], [10]]


# --- demo ------------------------------------------------------------------------------


@pytest.fixture
def private_storage(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    storages = {alias: {**conf} for alias, conf in settings.STORAGES.items()}
    storages["default"] = {**storages["default"], "OPTIONS": {**storages["default"]["OPTIONS"], "location": tmp_path}}
    settings.STORAGES = storages
    return tmp_path


def test_seed_sites_gives_the_demo_providers_their_gpus_and_is_idempotent(private_storage):
    seed_accounts()
    for code in ("H100", "H200", "A100"):
        GpuClassFactory(code=code)
    seed_sites()
    first = sorted(SiteCapacity.objects.values_list("pk", "site_id", "gpu_class__code", "gpus"))
    seed_sites()
    assert sorted(SiteCapacity.objects.values_list("pk", "site_id", "gpu_class__code", "gpus")) == first
    assert Site.objects.count() == 7

    def totals(legal_name: str) -> dict[str, int]:
        rows = SiteCapacity.objects.filter(site__organisation__legal_name=legal_name)
        return {code: sum(r.gpus for r in rows if r.gpu_class.code == code)
                for code in {r.gpu_class.code for r in rows}}

    assert totals("Alpenrechen Rechenzentrum GmbH") == {"H100": 512, "H200": 256}
    assert set(Site.objects.filter(organisation__legal_name="Alpenrechen Rechenzentrum GmbH")
               .values_list("state", flat=True)) == {"DE-BY"}
    assert totals("Rheinland Compute AG") == {"H100": 256, "A100": 128}
    assert Site.objects.get(organisation__legal_name="Rheinland Compute AG").state == "DE-NW"
    for market_maker in ("Taktgeber Liquidität GmbH", "Nordkurs Handel AG"):
        assert totals(market_maker) == {"H100": 512, "H200": 256, "A100": 256}
        assert set(Site.objects.filter(organisation__legal_name=market_maker)
                   .values_list("state", flat=True)) == {"DE-BY", "DE-NW"}
