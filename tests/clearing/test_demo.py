from decimal import Decimal

import pytest

from accounts.models import Organisation
from clearing.demo import DEMO_FUNDING, seed_clearing
from clearing.models import CashDeposit
from clearing.selectors import account_summary, trial_balance
from tests.clearing.conftest import make_organisation

pytestmark = pytest.mark.django_db


def test_seeding_funds_each_member_with_a_million_once(alice_org, charlie_org):
    ministry = make_organisation("Ministerium", kind=Organisation.Kind.OBSERVER)

    first = seed_clearing([alice_org, charlie_org, ministry])
    again = seed_clearing([alice_org, charlie_org, ministry])

    assert DEMO_FUNDING == Decimal("1000000.00")
    assert len(first) == 2
    assert again == []
    for organisation in (alice_org, charlie_org):
        assert account_summary(organisation=organisation)["cash_available"] == Decimal("1000000.00")
        assert CashDeposit.objects.get(organisation=organisation).bank_reference == f"DEMO-{organisation.pk}"
    assert not CashDeposit.objects.filter(organisation=ministry).exists()
    assert first[0].booked_by.is_staff
    assert not first[0].booked_by.has_usable_password()
    assert trial_balance() == 0
