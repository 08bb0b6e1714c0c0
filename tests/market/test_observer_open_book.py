"""The observers' open book (issue 11, Deliver 3): capacity offered (open
sell orders) by the federal state of the sites the GPUs are in, and unmet
demand (open buy orders) by the buyer's seat, each also by size class;
computed by hand, with primary and secondary suppression, and no member
named on the page."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest

from accounts.models import Organisation
from market import indicators
from market.models import Instrument, OrderStatus, Side
from market.selectors import activity
from tests.factories import BuyOrderRowFactory, GpuClassFactory, SiteCapacityFactory, SiteFactory, UserFactory
from tests.market.test_activity import big, future, hour_instrument, observer_user, org, sme, startup

pytestmark = pytest.mark.django_db

QUERY = {"gpu_class": "", "range": "month"}


def order(instrument, organisation, side, quantity, *, filled=0, status=OrderStatus.OPEN):  # type: ignore[no-untyped-def]
    return BuyOrderRowFactory(instrument=instrument, organisation=organisation, placed_by=UserFactory(), side=side,
                              price=Decimal("2.00"), quantity=quantity, filled_quantity=filled, status=status,
                              reserved_amount=Decimal(0))


def site(organisation, state, gpus):  # type: ignore[no-untyped-def]
    return SiteCapacityFactory(site=SiteFactory(organisation=organisation, state=state),
                               gpu_class=GpuClassFactory(code="H100"), gpus=gpus)


def by_key(rows, key="state"):  # type: ignore[no-untyped-def]
    return {row[key]: row for row in rows}


@pytest.fixture
def book():  # type: ignore[no-untyped-def]
    """Open orders of one hour (1 h instruments) in DE, DE-BY and DE-NW."""
    de, bavaria, nrw = hour_instrument(), hour_instrument(zone="DE-BY"), hour_instrument(zone="DE-NW")
    # Offers. Three large Bavarian providers in the Bavarian zone: 10 + (20 - 5 filled) + 5 = 30.
    providers = [big(f"Bayern {n} AG") for n in range(3)]
    for provider in providers:
        site(provider, "DE-BY", 100)
    order(bavaria, providers[0], Side.SELL, 10)
    order(bavaria, providers[1], Side.SELL, 20, filled=5, status=OrderStatus.PARTIALLY_FILLED)
    order(bavaria, providers[2], Side.SELL, 5)
    order(bavaria, providers[0], Side.SELL, 99, filled=99, status=OrderStatus.FILLED)  # traded: not open
    # A small provider with 60 GPUs in Bavaria and 40 in Hesse offers 10 in DE: 6 to Bavaria, 4 to Hesse.
    both = sme("Zweiland GmbH")
    site(both, "DE-BY", 60)
    site(both, "DE-HE", 40)
    order(de, both, Side.SELL, 10)
    # Three small providers in NRW's zone, 8 each; their seat is Berlin (supply counts where the GPUs are).
    rhine = [sme(f"Rhein {n} GmbH") for n in range(3)]
    for provider in rhine:
        Organisation.objects.filter(pk=provider.pk).update(state="DE-BE")
        site(provider, "DE-NW", 50)
        order(nrw, provider, Side.SELL, 8)
    # Unmet demand. Three Bavarian start-ups 5 + 6 + 7 = 18; a large Saarland buyer 2; three large Berlin ones 1 each.
    bavarians = [startup(f"Neu {n} GmbH") for n in range(3)]
    for n, buyer in enumerate(bavarians):
        Organisation.objects.filter(pk=buyer.pk).update(state="DE-BY")
        order(de, buyer, Side.BUY, 5 + n)
    order(de, bavarians[0], Side.BUY, 50, status=OrderStatus.CANCELLED)  # cancelled: not open
    saar = big("Saar AG")
    Organisation.objects.filter(pk=saar.pk).update(state="DE-SL")
    order(bavaria, saar, Side.BUY, 2)
    berliners = [big(f"Berlin {n} AG") for n in range(3)]
    for buyer in berliners:
        Organisation.objects.filter(pk=buyer.pk).update(state="DE-BE")
        order(nrw, buyer, Side.BUY, 1)
    order(future(), berliners[0], Side.BUY, 3)  # futures supply nothing: not counted
    return {"names": [o.legal_name for o in [*providers, both, *rhine, *bavarians, saar, *berliners]],
            "instrument": de}


def test_offered_capacity_by_site_state_and_unmet_demand_by_seat_with_suppression(book):
    tables = activity.observer_tables(QUERY)
    states = by_key(tables.open_states)
    assert len(states) == 16  # no offer without a site: no extra row
    # Offered: Bavaria 30 + 6 from four providers; Hesse 4 from one (withheld); NRW 24 from three, the
    # smallest other offer, withheld too: else Hesse = the total - the rest.
    assert (states["DE-BY"]["offerers"], states["DE-BY"]["offered_gpuh"]) == (4, 36)
    assert (states["DE-HE"]["offerers"], states["DE-HE"]["offered_gpuh"]) == (1, None)
    assert (states["DE-NW"]["offerers"], states["DE-NW"]["offered_gpuh"]) == (3, None)
    assert (states["DE-BE"]["offerers"], states["DE-BE"]["offered_gpuh"]) == (0, 0)  # their seat, not their sites
    # Unmet demand by seat: Bavaria 18 (three), Saarland 2 (one: withheld), Berlin 3 (three, the smallest other).
    assert (states["DE-BY"]["bidders"], states["DE-BY"]["unmet_demand_gpuh"]) == (3, 18)
    assert (states["DE-SL"]["bidders"], states["DE-SL"]["unmet_demand_gpuh"]) == (1, None)
    assert (states["DE-BE"]["bidders"], states["DE-BE"]["unmet_demand_gpuh"]) == (3, None)
    assert states["DE-HH"] == {"state": "DE-HH", "name": "Hamburg", "bidders": 0, "unmet_demand_gpuh": 0,
                               "offerers": 0, "offered_gpuh": 0}
    sizes = by_key(tables.open_sizes, "size_class")
    assert (sizes["large"]["offerers"], sizes["large"]["offered_gpuh"]) == (3, 30)
    assert (sizes["small"]["offerers"], sizes["small"]["offered_gpuh"]) == (4, 10 + 24)
    assert (sizes["micro"]["bidders"], sizes["micro"]["unmet_demand_gpuh"]) == (3, 18)
    assert (sizes["large"]["bidders"], sizes["large"]["unmet_demand_gpuh"]) == (4, 2 + 3)
    assert sizes["medium"]["offered_gpuh"] == 0 and sizes["unknown"]["unmet_demand_gpuh"] == 0


def test_hours_count_and_a_closed_instrument_has_no_open_orders(book):
    instrument: Instrument = book["instrument"]
    Instrument.objects.filter(pk=instrument.pk).update(hours=3)  # a 3-hour block, say
    states = by_key(activity.observer_tables(QUERY).open_states)
    assert states["DE-BY"]["unmet_demand_gpuh"] == 3 * 18
    assert states["DE-BY"]["offered_gpuh"] == 30 + 3 * 6  # 3 x 10 GPUh in DE: 18 to Bavaria, 12 to Hesse
    later = activity.observer_tables(QUERY, now=instrument.closes_at + timedelta(seconds=1))
    assert by_key(later.open_states)["DE-BY"]["unmet_demand_gpuh"] == 0  # its closes_at has passed


def test_an_offer_without_a_site_gets_a_row_of_its_own():
    reseller = big("Wiederverkauf AG")
    order(hour_instrument(), reseller, Side.SELL, 7)
    states = by_key(activity.observer_tables(QUERY).open_states)
    assert len(states) == 17
    assert (states["DE"]["offerers"], states["DE"]["offered_gpuh"]) == (1, None)


def test_the_class_filter_applies_to_the_open_book(book):
    a100 = hour_instrument(code="A100")
    order(a100, big("Andere AG"), Side.BUY, 40)
    tables = activity.observer_tables({"gpu_class": "A100", "range": "month"})
    assert sum(row["bidders"] for row in tables.open_states) == 1
    assert sum(row["offerers"] for row in tables.open_states) == 0


def test_the_observer_page_and_csv_show_the_open_book_and_name_nobody(client, book):
    client.force_login(observer_user())
    html = client.get("/dashboard/observer/?range=month").content.decode()
    assert 'data-testid="open-states-table"' in html and "Nicht gedeckte Nachfrage" in html
    for name in book["names"]:
        assert name not in html
    rows = by_key(csv.DictReader(io.StringIO(
        client.get("/dashboard/observer/csv/?table=open-states&range=month").content.decode())))
    assert rows["DE-BY"] == {"state": "DE-BY", "name": "Bayern", "bidders": "3", "unmet_demand_gpuh": "18",
                             "offerers": "4", "offered_gpuh": "36"}
    assert rows["DE-HE"]["offered_gpuh"] == ""
    sizes = list(csv.DictReader(io.StringIO(
        client.get("/dashboard/observer/csv/?table=open-sizes&range=month").content.decode())))
    assert [row["size_class"] for row in sizes] == list(indicators.SIZE_CLASSES)


def test_the_open_book_counts_a_member_once_per_state_and_class():
    # Two orders of one member in one state are one member: one offerer, withheld.
    seller = org("Doppel AG", employees_band="250+", turnover_band="gt50m")
    site(seller, "DE-BY", 100)
    bavaria = hour_instrument(zone="DE-BY")
    order(bavaria, seller, Side.SELL, 3)
    order(bavaria, seller, Side.SELL, 4)
    states = by_key(activity.observer_tables(QUERY).open_states)
    assert (states["DE-BY"]["offerers"], states["DE-BY"]["offered_gpuh"]) == (1, None)
