"""Demo money: each demo organisation starts with 1,000,000.00 EUR available;
and the market makers' deliveries (``maker_deliveries_advance``) and the
fees of the months their history ended in (``seed_settlement``).

Called by the demo seeding (``manage.py seed_demo``). Idempotent: the deposit
of each organisation carries the fixed bank reference ``DEMO-<id>`` and is
booked only while no deposit with that reference exists, so seeding twice
funds nobody twice, and money a member spent or reserved is not topped up.
"""

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clearing.models import CashDeposit, DeliveryTicket, FeeAccrual
from clearing.services import _cash_deposit_book, deliveries_settle
from clearing.services.delivery import delivery_access_post, delivery_confirm
from clearing.services.fees import fees_charge_month, month_bounds, month_of
from exchange.errors import ExchangeError

if TYPE_CHECKING:
    from accounts.models import Organisation, User

DEMO_FUNDING = Decimal("1000000.00")
DEMO_OPERATOR_EMAIL = "clearing-demo@rechenboerse.invalid"


def demo_bank_reference(organisation: "Organisation") -> str:
    return f"DEMO-{organisation.pk}"


def seed_clearing(organisations: Iterable["Organisation"], *, operator: "User | None" = None) -> list[CashDeposit]:
    """Fund each organisation with DEMO_FUNDING once; returns the deposits booked now.

    Observer organisations hold no cash and are skipped. The deposits are
    booked by ``operator``, or by a system operator that cannot log in.
    Runs in the caller's transaction, if there is one.
    """
    booked: list[CashDeposit] = []
    with transaction.atomic():
        for organisation in organisations:
            if organisation.is_observer:
                continue
            reference = demo_bank_reference(organisation)
            if CashDeposit.objects.filter(bank_reference=reference).exists():
                continue
            booked.append(
                _cash_deposit_book(
                    operator=operator or _demo_operator(),
                    organisation=organisation,
                    amount=DEMO_FUNDING,
                    bank_reference=reference,
                )
            )
    return booked


def _demo_operator() -> "User":
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        email=DEMO_OPERATOR_EMAIL,
        defaults={"full_name": "Demo-Einbuchung (System)", "is_staff": True, "is_active": True},
    )
    if created:
        # Books the demo deposits only; nobody logs in as it.
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


# --- the market makers' deliveries ----------------------------------------------------------

log = logging.getLogger(__name__)

DEMO_ENDPOINT = "ssh demo@{site}.gpu.demo.example -p 2222"
DEMO_INSTRUCTIONS = "Demo-Zugang: Schlüssel im Kundenportal hinterlegt; Ansprechpartner rechnet@demo.example."


@dataclass(frozen=True)
class DeliveriesResult:
    access_posted: int
    confirmed: int


def maker_deliveries_advance(*, traders: Mapping[str, "User"], now: datetime | None = None,
                             backdate: bool = False) -> DeliveriesResult:
    """What the market makers' staff would do with their delivery tickets,
    through the delivery services: as seller, post the access details of
    every ticket still awaiting them; as buyer, confirm every ticket whose
    delivery has started. ``traders`` maps a key to an owner or trader of
    each market maker; tickets of other members are never touched.

    Live (the demo market maker job) everything happens at ``now``: access
    to an hour that has already started is posted late, as it would be.
    ``backdate=True`` is for the seeded history, entered after the fact:
    access is posted at the delivery start at the latest, and confirmed by
    the delivery end."""
    now = now or timezone.now()
    users = {user.membership.organisation_id: user for user in traders.values()}
    posted = confirmed = 0
    selling = (DeliveryTicket.objects.filter(seller_id__in=users, status=DeliveryTicket.Status.AWAITING_ACCESS)
               .select_related("seller_site").order_by("delivery_start", "pk"))
    for ticket in selling:
        site = (ticket.seller_site.name if ticket.seller_site else "resale").split()[-1].lower()
        try:
            delivery_access_post(user=users[ticket.seller_id], ticket=ticket,
                                 endpoint=DEMO_ENDPOINT.format(site=site), instructions=DEMO_INSTRUCTIONS,
                                 now=min(now, ticket.delivery_start) if backdate else now)
        except ExchangeError as error:
            log.warning("demo access for ticket %s refused: %s %s", ticket.pk, error.code, error.detail)
            continue
        posted += 1
    buying = DeliveryTicket.objects.filter(
        Q(status=DeliveryTicket.Status.ACCESS_POSTED), buyer_id__in=users, delivery_start__lte=now,
    ).order_by("delivery_start", "pk")
    for ticket in buying:
        try:
            delivery_confirm(user=users[ticket.buyer_id], ticket=ticket,
                             now=min(now, ticket.delivery_end) if backdate else now)
        except ExchangeError as error:
            log.warning("demo confirmation of ticket %s refused: %s %s", ticket.pk, error.code, error.detail)
            continue
        confirmed += 1
    return DeliveriesResult(access_posted=posted, confirmed=confirmed)


@dataclass(frozen=True)
class SettlementResult:
    deliveries: DeliveriesResult
    settled: int
    months_charged: list[date]


def seed_settlement(*, traders: Mapping[str, "User"], now: datetime | None = None) -> SettlementResult:
    """After the seeded history: the market makers deliver and confirm, the
    settlement run pays what is due, and every month that has ended with
    fees still held is charged, as the monthly job would have (one invoice
    per member, the funds' sweep), so that ``reconcile`` is clean."""
    now = now or timezone.now()
    deliveries = maker_deliveries_advance(traders=traders, now=now, backdate=True)
    settled = deliveries_settle(now=now)
    charged = []
    this_month = month_of(now)
    for month in sorted(set(FeeAccrual.objects.filter(charged_at__isnull=True, month__lt=this_month)
                            .values_list("month", flat=True))):
        if month_bounds(month)[1] <= now:
            fees_charge_month(month=month, now=now)
            charged.append(month)
    return SettlementResult(deliveries=deliveries, settled=settled, months_charged=charged)
