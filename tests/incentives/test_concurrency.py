"""Two operators approve at once (issue 12; docs/incentives.md,
"Approvals"): the Programme row lock keeps a programme's budget from being
overspent. The control twin runs the same race without the lock and
overspends: the test can see the race."""

import time
from collections import Counter
from decimal import Decimal

import pytest

from incentives import services
from incentives.models import CreditGrant, Programme
from incentives.services import application_approve, application_submit, programme_open
from tests.clearing.conftest import make_user
from tests.concurrency import run_at_once
from tests.incentives.conftest import fund, make_programme, make_startup

pytestmark = [pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]

D = Decimal


@pytest.fixture
def race(settings):
    settings.INCENTIVE_FOUR_EYES_THRESHOLD = D("100000.00")
    operator = make_user("operator@race.test", staff=True)
    fund(operator, "2000.00")
    # Two programmes open: the guarded programme_budgets account holds 2,000.00,
    # so only the programme row lock can keep programme A within its 1,000.00.
    a = programme_open(operator=operator, programme=make_programme(name="A", budget=D("1000.00")))
    programme_open(operator=operator, programme=make_programme(name="B", budget=D("1000.00")))
    applications = []
    for i in range(2):
        user = make_user(f"founder{i}@race.test", organisation=make_startup(f"Race {i} GmbH"))
        applications.append(application_submit(user=user, programme=a, plan="Rechnen", amount=D("600.00")))
    operators = [make_user(f"approver{i}@race.test", staff=True) for i in range(2)]
    return a, applications, operators


def widen_window(monkeypatch) -> None:
    """Sleep between reading what is left and granting: the race shows on every run."""
    limit = services.approval_limit

    def slow_limit(**kwargs):
        result = limit(**kwargs)
        time.sleep(0.3)
        return result

    monkeypatch.setattr(services, "approval_limit", slow_limit)


def test_two_concurrent_approvals_never_overspend_the_budget(race, monkeypatch):
    programme, applications, operators = race
    widen_window(monkeypatch)

    def approve(i: int) -> str:
        application_approve(operator=operators[i], application=applications[i])
        return "approved"

    assert run_at_once(2, approve) == Counter({"approved": 1, "insufficient_funds": 1})
    assert sum(g.amount for g in CreditGrant.objects.filter(programme=programme)) == D("600.00")


def test_control_twin_without_the_programme_lock_overspends(race, monkeypatch):
    programme, applications, operators = race
    widen_window(monkeypatch)
    monkeypatch.setattr(services, "_lock_programme", lambda pk: Programme.objects.get(pk=pk))

    def approve(i: int) -> str:
        application_approve(operator=operators[i], application=applications[i])
        return "approved"

    assert run_at_once(2, approve) == Counter({"approved": 2})
    granted = sum(g.amount for g in CreditGrant.objects.filter(programme=programme))
    assert granted == D("1200.00") > programme.budget
