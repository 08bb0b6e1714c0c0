"""issue 8 item 7: admin lists show linked objects instead of internal ids,
labels instead of stored values, Berlin time and grouped numbers (German
1.234,56); fee accruals are listed read-only; "Orders" is translated."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditLog, User
from accounts.services import audit_record
from clearing.models import FeeAccrual, JournalEntry
from market.models import Trade
from tests.clearing.conftest import deposit, make_organisation, make_user
from tests.factories import spot_trade
from tests.market.orders_world import World, make_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def admin_client(client, settings):
    settings.LANGUAGE_CODE = "de"
    client.force_login(User.objects.create_superuser(email="root@admin.test", password="correct horse battery"))
    return client


def changelist(client, model: str, **params) -> str:
    response = client.get(reverse(f"admin:{model}_changelist"), params)
    assert response.status_code == 200
    return response.content.decode()


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def test_the_trade_list_links_its_objects_and_groups_its_numbers(admin_client, world):
    trade = spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=4,
                       price=Decimal("123.45"))

    body = changelist(admin_client, "market_trade")

    assert f'href="{change_url(world.instrument)}"' in body and world.instrument.symbol in body
    assert f'href="{change_url(world.org_a)}"' in body and f'href="{change_url(world.org_c)}"' in body
    assert f'href="{change_url(trade.buy_order)}">#{trade.buy_order.pk}</a>' in body
    assert "123,45" in body and "123.45" not in body
    # The aggressor's label, not the stored value.
    assert "<td class=\"field-aggressor\">Kauf</td>" in body


def test_orders_are_called_auftraege_in_german(admin_client, world):
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert "Aufträge" in index


def test_amounts_are_grouped(admin_client):
    operator = make_user("operator@admin.test", staff=True)
    organisation = make_organisation("Gruppierung GmbH")
    deposit(operator, organisation, "1234567.89")

    body = changelist(admin_client, "clearing_cashdeposit")

    assert "1.234.567,89" in body and "1234567" not in body
    assert f'href="{change_url(organisation)}"' in body


def test_times_are_berlin_time(admin_client, world):
    start = world.instrument.delivery_start
    berlin, utc = timezone.localtime(start), start.astimezone(datetime.UTC)

    body = changelist(admin_client, "market_instrument")

    assert f"{berlin:%H:%M}" in body
    assert f"{utc:%H:%M}" not in body


def test_journal_references_link_to_what_they_name(admin_client, world):
    trade = spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=2)
    assert JournalEntry.objects.filter(reference=f"trade:{trade.pk}").exists()

    body = changelist(admin_client, "clearing_journalentry")

    assert f'href="{change_url(trade)}"' in body
    order = trade.buy_order  # the reservation's order:<id>, named as members know it
    assert f'<a href="{change_url(order)}">#{order.pk}</a> (order:{order.pk})' in body


def test_the_audit_log_shows_what_happened_to_which_object(admin_client, world):
    audit_record(actor=None, action="instrument.halt", organisation=None, obj=world.instrument,
                 before={"status": "open"}, after={"status": "halted"}, reason="Test")

    body = changelist(admin_client, "accounts_auditlog")

    assert "Handel ausgesetzt (instrument.halt)" in body
    assert '<a href="?action=instrument.halt">Handel ausgesetzt</a>' in body  # the filter, by its label
    assert f'href="{change_url(world.instrument)}"' in body and f"Instrument #{world.instrument.pk}" in body
    assert AuditLog.objects.count() >= 1


def test_fee_accruals_are_listed_read_only(admin_client, world):
    spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=2)
    accrual = FeeAccrual.objects.filter(organisation=world.org_a).get()

    body = changelist(admin_client, "clearing_feeaccrual")
    detail = admin_client.get(change_url(accrual))

    assert world.org_a.legal_name in body and f'href="{change_url(world.org_a)}"' in body
    assert timezone.localdate().strftime("%Y") in body
    assert detail.status_code == 200
    assert admin_client.get(reverse("admin:clearing_feeaccrual_add")).status_code == 403
    assert admin_client.post(reverse("admin:clearing_feeaccrual_delete", args=[accrual.pk]),
                             {"post": "yes"}).status_code == 403
    assert FeeAccrual.objects.filter(pk=accrual.pk).exists()
    assert Trade.objects.count() == 1
