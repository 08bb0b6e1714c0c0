"""issue 8 item 7: the invoice issuer comes from settings (marked when it is
demo data), and every invoice line shows its unit price."""

from decimal import Decimal

import pytest
from django.urls import reverse

from clearing.invoicing import InvoiceLineData, invoice_issue
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

ISSUER = {"name": "Rechenbörse Betriebs-GmbH", "street": "Am Sandtorkai 1", "postal_code": "20457",
          "city": "Hamburg", "vat_id": "DE136695976", "register": "Amtsgericht Hamburg HRB 123456",
          "demo_data": False}


@pytest.fixture
def invoice_page(client, alice_org):
    owner = MembershipFactory(user=UserFactory(email="owner@issuer.test"), organisation=alice_org,
                              is_owner=True, is_trader=False).user
    invoice = invoice_issue(organisation=alice_org, reference="fees:2026-11", lines=[
        InvoiceLineData(description="Intraday maker fee", amount=Decimal("6.17"), quantity=Decimal("1234"),
                        unit="GPUh", unit_price=Decimal("0.005")),
        InvoiceLineData(description="Intraday taker fee", amount=Decimal("1851.00"), quantity=Decimal("123400"),
                        unit="GPUh", unit_price=Decimal("0.015")),
    ])
    client.force_login(owner)

    def get() -> str:
        response = client.get(reverse("invoice_detail", args=[invoice.number]))
        assert response.status_code == 200
        return response.content.decode()

    return get


def test_the_issuer_comes_from_settings(invoice_page, settings):
    settings.INVOICE_ISSUER = ISSUER

    body = invoice_page()

    for value in ("Rechenbörse Betriebs-GmbH", "Am Sandtorkai 1", "20457 Hamburg", "DE136695976",
                  "Amtsgericht Hamburg HRB 123456"):
        assert value in body
    assert "Demo-Daten" not in body


def test_demo_issuer_details_are_marked(invoice_page, settings):
    settings.INVOICE_ISSUER = {**ISSUER, "demo_data": True}

    body = invoice_page()

    assert "Demo-Daten" in body
    assert "keine gültige Rechnung" in body


def test_each_line_shows_its_unit_price_and_grouped_amounts(invoice_page, settings):
    settings.INVOICE_ISSUER = ISSUER

    body = invoice_page()

    assert "0,005" in body and "0,015" in body
    assert "123.400 GPUh" in body and "1.234 GPUh" in body
    assert "1.851,00" in body and "1.857,17" in body


def test_the_monthly_fee_lines_give_the_exact_fees_in_german_format():
    from django.utils import timezone

    from clearing.models import InvoiceLine
    from clearing.services.fees import fees_charge_month, month_bounds, month_of
    from tests.factories import spot_trade
    from tests.market.orders_world import make_world

    world = make_world()
    spot_trade(seller=world.alice, buyer=world.charlie, instrument=world.instrument, quantity=3)
    month = month_of(timezone.now())

    fees_charge_month(month=month, now=month_bounds(month)[1])

    descriptions = list(InvoiceLine.objects.values_list("description", flat=True))
    assert descriptions
    for text in descriptions:
        exact = text.split("exakt ")[1].split(" EUR")[0]
        assert "," in exact and "." not in exact, text
