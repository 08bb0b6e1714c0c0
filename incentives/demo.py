"""Demo data of the start-up incentives (``seed_demo``): one open programme
the demo start-ups (founded 1-3 years ago, SMEs) are eligible for. Applying
is left to the visitor. Idempotent: a second run finds the programme."""

import datetime
from decimal import Decimal

from django.utils import timezone

from accounts.models import User
from clearing.models import Account
from clearing.selectors import house_balances
from incentives.models import Programme
from incentives.services import programme_open, start_financing_book

DEMO_PROGRAMME = "Demo: Gründungsrechnen (Demodaten)"
DEMO_BUDGET = Decimal("50000.00")


def seed_incentives(*, operator: User) -> Programme:
    """Open the demo programme, funded from the incentive fund; when the fund
    holds too little, a demo start financing is booked first (the existing
    service, audited like a real one)."""
    existing = Programme.objects.filter(name=DEMO_PROGRAMME).first()
    if existing is not None:
        return existing
    today = timezone.localdate()
    programme = Programme.objects.create(
        name=DEMO_PROGRAMME, budget=DEMO_BUDGET, starts_on=today, ends_on=today + datetime.timedelta(days=365),
        description="Demodaten: Handelsguthaben für junge KMU, bis 5.000 EUR je Organisation.",
        max_age_years=5, sme_only=True, states=[], first_time_buyers_only=False, max_grant=Decimal("5000.00"),
        matching_ratio=None, credit_validity_months=12)
    held = house_balances([Account.Kind.INCENTIVE_FUND])[Account.Kind.INCENTIVE_FUND]
    if held < DEMO_BUDGET:
        start_financing_book(operator=operator, amount=DEMO_BUDGET - held, repayment_share=Decimal("0.5"),
                             reason="Demodaten: Startfinanzierung für das Demo-Förderprogramm")
    return programme_open(operator=operator, programme=programme)
