"""The actors and the market of the trading screen and WebSocket tests
(healthchecks style): Alice's organisation offers capacity (a provider site
in Bavaria), Bob trades in Alice's organisation, Charlie's organisation buys
and must see none of Alice's things; Olga is the operator who booked
Charlie's money. One open intraday instrument, H100 in zone DE, tomorrow
14:00-15:00."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from accounts.models import KycCase, Organisation, User
from clearing.services import cash_deposit_book
from market.models import DeliveryZone, Instrument
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

APPROVED = KycCase.Status.APPROVED


@dataclass
class TradingWorld:
    instrument: Instrument
    org_a: Organisation
    alice: User
    bob: User
    org_c: Organisation
    charlie: User
    operator: User


def ensure_zones(*codes: str) -> None:
    # A data migration makes the 17 zones, but a transactional test's flush
    # empties the table for the tests after it.
    for code in codes:
        DeliveryZone.objects.get_or_create(code=code, defaults={"name": code})


def open_instrument(*, days_ahead: int = 1, label: str = "14", zone_code: str = "DE") -> Instrument:
    """An intraday instrument that takes orders now, whatever the time of day."""
    ensure_zones(zone_code)
    return HourInstrumentFactory(
        gpu_class=GpuClassFactory(code="H100"), zone_code=zone_code, hour=delivery_hour(days_ahead, label),
        opens_at=timezone.now() - timedelta(hours=1),
    )


def trading_world(*, cash: Decimal = Decimal("100000.00")) -> TradingWorld:
    instrument = open_instrument()
    org_a = OrganisationFactory(legal_name="Alice Rechenwerk GmbH", kyc__status=APPROVED)
    alice = UserFactory(email="alice@example.com", full_name="Alice")
    MembershipFactory(user=alice, organisation=org_a, is_owner=True, is_trader=True, is_provider=True)
    bob = UserFactory(email="bob@example.com", full_name="Bob")
    MembershipFactory(user=bob, organisation=org_a, is_trader=True)
    SiteCapacityFactory(site=SiteFactory(organisation=org_a, state=Organisation.State.BY),
                        gpu_class=instrument.gpu_class, gpus=100)

    org_c = OrganisationFactory(legal_name="Charlie Cloud AG", kyc__status=APPROVED)
    charlie = UserFactory(email="charlie@example.com", full_name="Charlie")
    MembershipFactory(user=charlie, organisation=org_c, is_owner=True, is_trader=True)
    operator = UserFactory(email="olga@operator.example", full_name="Olga", is_staff=True)
    for organisation in (org_a, org_c):
        cash_deposit_book(operator=operator, organisation=organisation, amount=cash,
                          bank_reference=f"TEST-{organisation.pk}")
    return TradingWorld(instrument=instrument, org_a=org_a, alice=alice, bob=bob, org_c=org_c, charlie=charlie,
                        operator=operator)
