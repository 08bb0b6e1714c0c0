"""Demo money: each demo organisation starts with 1,000,000.00 EUR available.

Called by the demo seeding (``manage.py seed_demo``). Idempotent: the deposit
of each organisation carries the fixed bank reference ``DEMO-<id>`` and is
booked only while no deposit with that reference exists, so seeding twice
funds nobody twice, and money a member spent or reserved is not topped up.
"""

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import transaction

from clearing.models import CashDeposit
from clearing.services import _cash_deposit_book

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
