"""The actors and the market of the order service, trading API and order
concurrency tests (healthchecks style):

* Alice's organisation (Alice Rechenwerk GmbH) offers capacity: a site in
  Bavaria with 100 H100. Alice owns it and trades; Bob trades in it too;
  Vera only views.
* Charlie's organisation (Charlie Cloud AG) buys; it has no sites and must
  see none of Alice's things.
* Dora's organisation (Dora Data GmbH) is a second seller (a site in Bavaria
  with 50 H100), for priority between two organisations.
* Kai's organisation has not passed KYC.

Everyone approved has 10,000.00 EUR. The instrument is H100 in zone DE,
tomorrow 14:00-15:00 (one hour), open now. Fees: maker 0.005, taker 0.015
EUR/GPUh, so the maximum fee reserved per GPU-hour is 0.02.
"""

from dataclasses import dataclass
from decimal import Decimal

from accounts.models import KycCase, Organisation, User
from clearing.models import JournalEntry
from clearing.selectors import (
    account_summary,
    fee_reserve_balance,
    trial_balance,
    unbalanced_entries,
    unreconciled_accounts,
)
from market.models import Instrument, Order, Position, Trade
from tests.factories import (
    MembershipFactory,
    OpenInstrumentFactory,
    OrganisationFactory,
    SiteCapacityFactory,
    SiteFactory,
    UserFactory,
    deposit,
)

D = Decimal
CASH = D("10000.00")
APPROVED = KycCase.Status.APPROVED


@dataclass
class World:
    instrument: Instrument
    org_a: Organisation
    alice: User
    bob: User
    vera: User
    org_c: Organisation
    charlie: User
    org_d: Organisation
    dora: User
    kai: User


def make_world(*, cash: Decimal = CASH) -> World:
    instrument = OpenInstrumentFactory()
    org_a = OrganisationFactory(legal_name="Alice Rechenwerk GmbH", kyc__status=APPROVED)
    alice = UserFactory(email="alice@orders.test", full_name="Alice")
    MembershipFactory(user=alice, organisation=org_a, is_owner=True, is_trader=True, is_provider=True)
    bob = UserFactory(email="bob@orders.test", full_name="Bob")
    MembershipFactory(user=bob, organisation=org_a, is_trader=True)
    vera = UserFactory(email="vera@orders.test", full_name="Vera")
    MembershipFactory(user=vera, organisation=org_a, is_trader=False, is_viewer=True)
    SiteCapacityFactory(site=SiteFactory(organisation=org_a, state=Organisation.State.BY),
                        gpu_class=instrument.gpu_class, gpus=100)

    org_c = OrganisationFactory(legal_name="Charlie Cloud AG", kyc__status=APPROVED)
    charlie = UserFactory(email="charlie@orders.test", full_name="Charlie")
    MembershipFactory(user=charlie, organisation=org_c, is_owner=True, is_trader=True)

    org_d = OrganisationFactory(legal_name="Dora Data GmbH", kyc__status=APPROVED)
    dora = UserFactory(email="dora@orders.test", full_name="Dora")
    MembershipFactory(user=dora, organisation=org_d, is_owner=True, is_trader=True, is_provider=True)
    SiteCapacityFactory(site=SiteFactory(organisation=org_d, state=Organisation.State.BY),
                        gpu_class=instrument.gpu_class, gpus=50)

    org_k = OrganisationFactory(legal_name="Kai KYC-offen GmbH")  # KYC still a draft
    kai = UserFactory(email="kai@orders.test", full_name="Kai")
    MembershipFactory(user=kai, organisation=org_k, is_owner=True, is_trader=True)

    for organisation in (org_a, org_c, org_d, org_k):
        deposit(organisation, cash)
    return World(instrument=instrument, org_a=org_a, alice=alice, bob=bob, vera=vera, org_c=org_c,
                 charlie=charlie, org_d=org_d, dora=dora, kai=kai)


def money(organisation: Organisation) -> dict[str, Decimal]:
    return account_summary(organisation=organisation)


def held(organisation: Organisation) -> Decimal:
    """The organisation's fee reserve: its fees incl. VAT of the months not yet charged."""
    return fee_reserve_balance(organisation=organisation)


def position(organisation: Organisation, instrument: Instrument) -> tuple[int, int, int, Decimal, Decimal]:
    row = Position.objects.filter(organisation=organisation, instrument=instrument).first()
    if row is None:
        return (0, 0, 0, D("0.00"), D("0.00"))
    return (row.quantity, row.bought, row.sold, row.buy_cost, row.sell_proceeds)


def written() -> tuple[int, int, int, int]:
    """Counts of what a request could write: orders, trades, journal entries, positions."""
    return (Order.objects.count(), Trade.objects.count(), JournalEntry.objects.count(), Position.objects.count())


def books_balance() -> None:
    """Every clearing invariant holds."""
    assert trial_balance() == 0
    assert not unbalanced_entries().exists()
    assert not unreconciled_accounts().exists()
