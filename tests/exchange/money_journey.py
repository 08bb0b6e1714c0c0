"""The money journey (issue 8 item 1): trade, amend and cancel, deliver,
confirm, settle, invoice, reconcile, every euro checked by hand.

One journey, two places it runs:

* in the suite, on PostgreSQL, through Django's test client
  (tests/exchange/test_money_journey.py);
* on the embedded default that ``make run`` starts, through real HTTP to its
  daphne and with settlement done by its real Celery worker, in a process of
  its own (tests/exchange/test_embedded_journey.py runs
  ``python -m tests.exchange.money_journey <base URL>``).

It covers the two failures the embedded SQLite default had: a buy amended
from 2.50 x 4 to 2.60 x 6 and then cancelled releases its whole reservation;
settlement pays the seller, and the month's charge issues the invoices.

Orders, access details and the account go through the public API; what the
API cannot do before the delivery hour (confirming takes the delivery start,
charging the month takes its end) goes through the same services with their
``now``. Its actors are made afresh per run (a suffix in their names), so it
runs on a database that holds the demo data too.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol

D = Decimal
DEPOSIT = D("1000.00")
PASSWORD = "journey-password-4711"  # noqa: S105 - a throwaway actor's password

# --- hand-computed figures (market rules §3; README "Trading") ---------------------------------
# A buy reserves limit x GPUs x hours + the maximum fee, 0.03 per GPU-hour at
# the taker rate 0.015 (0.02 rounded up, plus 19 % VAT on it rounded up: 0.01).
RESERVED_2_50_X_4 = D("10.12")  # 2.50 x 4 + 4 x 0.03
RESERVED_2_60_X_6 = D("15.78")  # 2.60 x 6 + 6 x 0.03
# The trade: the provider rests 3 GPUs at 2.40 (maker), the start-up buys 3
# at up to 2.50 (taker) and trades at the resting price.
VALUE = D("7.20")  # 2.40 x 3 x 1 h
# Fees accrue exactly and the month's are held net + VAT, each rounded once:
# buyer 0.015 x 3 = 0.045 -> net 0.05 + VAT 0.0095 -> 0.01 = 0.06;
# seller 0.005 x 3 = 0.015 -> net 0.02 + VAT 0.0038 -> 0.00 = 0.02.
BUYER_FEE_NET, BUYER_FEE_VAT, BUYER_FEE_HELD = D("0.05"), D("0.01"), D("0.06")
SELLER_FEE_NET, SELLER_FEE_VAT, SELLER_FEE_HELD = D("0.02"), D("0.00"), D("0.02")
PAYOUT = VALUE - SELLER_FEE_HELD  # 7.18: the seller's fee stays with the clearing house for the invoice


class Api(Protocol):
    def __call__(self, method: str, path: str, body: dict[str, Any] | None = None,
                 token: str | None = None) -> tuple[int, Any]: ...


def http_api(base_url: str) -> Api:
    """The API over real HTTP (urllib), e.g. to the daphne of ``make run``."""

    def call(method: str, path: str, body: dict[str, Any] | None = None,
             token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(base_url.rstrip("/") + path, data=data, method=method,  # noqa: S310 - our own server
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    return call


def client_api() -> Api:
    """The API through Django's test client (in the suite's process)."""
    from django.test import Client

    client = Client()

    def call(method: str, path: str, body: dict[str, Any] | None = None,
             token: str | None = None) -> tuple[int, Any]:
        extra = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
        response = client.generic(method, path, json.dumps(body) if body is not None else "",
                                  content_type="application/json", **extra)
        return response.status_code, response.json() if response.content else None

    return call


@dataclass
class Actors:
    provider_token: str
    startup_token: str
    provider_user: Any
    startup_user: Any
    provider_org: Any
    startup_org: Any
    instrument: Any
    operator: Any


def _expect(answer: tuple[int, Any], status: int) -> Any:
    got, body = answer
    assert got == status, f"expected HTTP {status}, got {got}: {body}"
    return body


def _actors(api: Api) -> Actors:
    """A provider in Bavaria and a start-up, each approved and with 1,000.00 EUR,
    and an intraday hour three days ahead (listed for this journey, open now)."""
    from django.utils import timezone

    from accounts.models import KycCase, Organisation
    from clearing.services import cash_deposit_book
    from market.models import DeliveryZone
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

    tag = uuid.uuid4().hex[:8]
    approved = KycCase.Status.APPROVED
    DeliveryZone.objects.get_or_create(code="DE", defaults={"name": "Deutschland"})
    instrument = HourInstrumentFactory(gpu_class=GpuClassFactory(code="H100"), zone_code="DE",
                                       hour=delivery_hour(3, "05"), opens_at=timezone.now() - timedelta(hours=1))
    provider_org = OrganisationFactory(legal_name=f"Reise Rechenwerk {tag} GmbH", kyc__status=approved)
    startup_org = OrganisationFactory(legal_name=f"Reise Tensor {tag} GmbH", kyc__status=approved)
    provider = UserFactory(email=f"provider-{tag}@journey.example", password=PASSWORD)
    startup = UserFactory(email=f"startup-{tag}@journey.example", password=PASSWORD)
    MembershipFactory(user=provider, organisation=provider_org, is_owner=True, is_trader=True, is_provider=True)
    MembershipFactory(user=startup, organisation=startup_org, is_owner=True, is_trader=True)
    SiteCapacityFactory(site=SiteFactory(organisation=provider_org, state=Organisation.State.BY),
                        gpu_class=instrument.gpu_class, gpus=10)
    operator = UserFactory(email=f"operator-{tag}@journey.example", is_staff=True)
    for organisation in (provider_org, startup_org):
        cash_deposit_book(operator=operator, organisation=organisation, amount=DEPOSIT,
                          bank_reference=f"JOURNEY-{tag}-{organisation.pk}")
    tokens = [_expect(api("POST", "/api/v1/auth/token/", {"email": user.email, "password": PASSWORD}), 201)["token"]
              for user in (provider, startup)]
    return Actors(provider_token=tokens[0], startup_token=tokens[1], provider_user=provider, startup_user=startup,
                  provider_org=provider_org, startup_org=startup_org, instrument=instrument, operator=operator)


def _account(api: Api, token: str) -> dict[str, Decimal]:
    body = _expect(api("GET", "/api/v1/account/", token=token), 200)
    return {key: D(body[key]) for key in ("cash_available", "cash_reserved", "settlement_pending")}


def _fee_reserve(organisation: Any) -> Decimal:
    from clearing.models import Account

    return Account.objects.get(organisation=organisation, kind=Account.Kind.FEE_RESERVE).balance


def default_settle(ticket_ids: list[int], token: str) -> None:
    """Settlement as the beat job runs it, in this process."""
    from clearing.tasks import settle_deliveries

    assert settle_deliveries.apply().successful()


def run(api: Api, *, settle: Callable[[list[int], str], None] = default_settle) -> dict[str, Any]:
    """The whole journey; raises AssertionError at the first figure that is off.
    ``settle(ticket_ids, buyer_token)`` settles the confirmed tickets (default:
    the job, in this process)."""
    from django.core.management import call_command

    from clearing.models import DeliveryTicket, FeeAccrual, Invoice
    from clearing.reconcile import reconcile
    from clearing.services import delivery_confirm
    from clearing.services.fees import fees_charge_month, month_bounds, month_of

    actors = _actors(api)
    symbol = actors.instrument.symbol
    buyer, seller = actors.startup_token, actors.provider_token
    start = {"cash_available": DEPOSIT, "cash_reserved": D("0.00"), "settlement_pending": D("0.00")}
    assert _account(api, buyer) == start

    # 1. Buy 2.50 x 4, amend to 2.60 x 6, cancel: the reservation follows and is released in full.
    order = _expect(api("POST", "/api/v1/orders/", {
        "instrument": symbol, "side": "buy", "type": "limit", "price": "2.50", "quantity": 4,
        "time_in_force": "GTC", "client_order_id": "journey-amend"}, token=buyer), 201)
    assert _account(api, buyer) == {**start, "cash_available": DEPOSIT - RESERVED_2_50_X_4,
                                    "cash_reserved": RESERVED_2_50_X_4}
    amended = _expect(api("PATCH", f"/api/v1/orders/{order['id']}/", {"price": "2.60", "quantity": 6},
                          token=buyer), 200)
    assert (amended["price"], amended["quantity"], amended["status"]) == ("2.60", 6, "open")
    assert _account(api, buyer) == {**start, "cash_available": DEPOSIT - RESERVED_2_60_X_6,
                                    "cash_reserved": RESERVED_2_60_X_6}
    cancelled = _expect(api("DELETE", f"/api/v1/orders/{order['id']}/", token=buyer), 200)
    assert cancelled["status"] == "cancelled"
    assert _account(api, buyer) == start

    # 2. The trade: the provider rests 3 at 2.40, the start-up takes them with a limit of 2.50.
    _expect(api("POST", "/api/v1/orders/", {"instrument": symbol, "side": "sell", "type": "limit",
                                            "price": "2.40", "quantity": 3, "time_in_force": "GTC"},
                token=seller), 201)
    bought = _expect(api("POST", "/api/v1/orders/", {"instrument": symbol, "side": "buy", "type": "limit",
                                                     "price": "2.50", "quantity": 3, "time_in_force": "GTC"},
                         token=buyer), 201)
    assert (bought["status"], bought["filled_quantity"], D(bought["average_price"])) == ("filled", 3, D("2.40")), bought
    assert [(fill["price"], fill["quantity"], fill["liquidity"]) for fill in bought["fills"]] == [("2.40", 3, "taker")]
    assert _account(api, buyer) == {"cash_available": DEPOSIT - VALUE - BUYER_FEE_HELD,
                                    "cash_reserved": D("0.00"), "settlement_pending": VALUE}
    assert _account(api, seller) == {"cash_available": DEPOSIT, "cash_reserved": D("0.00"),
                                     "settlement_pending": PAYOUT}
    assert (_fee_reserve(actors.startup_org), _fee_reserve(actors.provider_org)) == (BUYER_FEE_HELD,
                                                                                       SELLER_FEE_HELD)

    # 3. Delivery: the seller posts access details, the buyer confirms at delivery start.
    [ticket] = _expect(api("GET", "/api/v1/deliveries/", token=seller), 200)
    assert (ticket["gpus"], D(ticket["value"])) == (3, VALUE), ticket
    _expect(api("POST", f"/api/v1/deliveries/{ticket['id']}/access/",
                {"endpoint": "ssh journey@gpu-01.example -p 2222", "instructions": "Schlüssel per SFTP"},
                token=seller), 200)
    row = DeliveryTicket.objects.get(pk=ticket["id"])
    delivery_confirm(user=actors.startup_user, ticket=row, now=row.delivery_start + timedelta(minutes=5))

    # 4. Settlement pays the seller its value less its fee; the buyer's obligation is met.
    settle([row.pk], buyer)
    row.refresh_from_db()
    assert row.status == DeliveryTicket.Status.SETTLED and row.settlement_entry_id is not None
    assert _account(api, buyer) == {"cash_available": DEPOSIT - VALUE - BUYER_FEE_HELD,
                                    "cash_reserved": D("0.00"), "settlement_pending": D("0.00")}
    assert _account(api, seller) == {"cash_available": DEPOSIT + PAYOUT, "cash_reserved": D("0.00"),
                                     "settlement_pending": D("0.00")}
    # The books are clean now, as the operators' command sees them.
    call_command("reconcile")

    # 5. The month's charge: one invoice each, exactly what was held, and the reserves emptied.
    month = month_of(row.trade.executed_at)
    month_end = month_bounds(month)[1]
    fees_charge_month(month=month, now=month_end + timedelta(minutes=30))
    invoices = {invoice.organisation_id: invoice for invoice in Invoice.objects.filter(
        organisation__in=[actors.startup_org, actors.provider_org], reference__startswith="fees:")}
    figures = {org: (invoices[org.pk].net_total, invoices[org.pk].vat_amount, invoices[org.pk].gross_total)
               for org in (actors.startup_org, actors.provider_org)}
    assert figures == {actors.startup_org: (BUYER_FEE_NET, BUYER_FEE_VAT, BUYER_FEE_HELD),
                       actors.provider_org: (SELLER_FEE_NET, SELLER_FEE_VAT, SELLER_FEE_HELD)}, figures
    assert all(invoice.gross_total == invoice.net_total + invoice.vat_amount for invoice in invoices.values())
    assert (_fee_reserve(actors.startup_org), _fee_reserve(actors.provider_org)) == (D("0.00"), D("0.00"))
    assert FeeAccrual.objects.filter(organisation__in=[actors.startup_org, actors.provider_org],
                                     month=month, charged_at__isnull=True).count() == 0
    assert _account(api, buyer)["cash_available"] == DEPOSIT - VALUE - BUYER_FEE_HELD
    assert _account(api, seller)["cash_available"] == DEPOSIT + PAYOUT

    # 6. Reconcile, as it will read once the month is over: nothing broken.
    breaches = reconcile(now=month_end + timedelta(days=2))
    assert breaches == [], breaches
    return {"symbol": symbol, "ticket": row.pk, "buyer_token": buyer,
            "invoices": sorted(invoice.number for invoice in invoices.values())}


# --- on a running server: its Celery worker settles and expires, its screens hear it ------------


def _await_event(socket: Any, wanted: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            message = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            break
        if wanted(message):
            return message
        seen.append(message)
    raise AssertionError(f"no such event within {timeout} s; saw {seen}")


def worker_settles(base_url: str) -> Callable[[list[int], str], None]:
    """Settlement by the server's Celery worker (the job sent through the
    broker, as beat sends it), heard on the buyer's private WebSocket as an
    open screen hears it."""
    from websockets.sync.client import connect

    from clearing.tasks import settle_deliveries

    def settle(ticket_ids: list[int], token: str) -> None:
        ws_url = base_url.replace("http", "ws", 1).rstrip("/") + f"/ws/private/?token={token}"
        with connect(ws_url, open_timeout=30) as socket:
            time.sleep(0.5)  # the consumer joins its group after the handshake
            settle_deliveries.delay()
            pending = set(ticket_ids)
            while pending:
                event = _await_event(socket, lambda m: m.get("type") == "delivery" and m.get("id") in pending, 60)
                assert event["status"] == "settled", event
                pending.discard(event["id"])

    return settle


def worker_expires(base_url: str, api: Api, token: str, symbol: str) -> dict[str, Any]:
    """A GTD buy expires by the worker's job; the private stream says so."""
    from django.utils import timezone
    from websockets.sync.client import connect

    from market.tasks import expire_orders

    ws_url = base_url.replace("http", "ws", 1).rstrip("/") + f"/ws/private/?token={token}"
    with connect(ws_url, open_timeout=30) as socket:
        time.sleep(0.5)
        expires_at = timezone.now() + timedelta(seconds=5)
        order = _expect(api("POST", "/api/v1/orders/", {
            "instrument": symbol, "side": "buy", "type": "limit", "price": "1.00", "quantity": 1,
            "time_in_force": "GTD", "expires_at": expires_at.isoformat()}, token=token), 201)
        time.sleep(max(0.0, (expires_at - timezone.now()).total_seconds()) + 0.5)
        expire_orders.delay()
        event = _await_event(socket, lambda m: m.get("type") == "order" and m["order"]["id"] == order["id"]
                             and m["order"]["status"] == "expired", 60)
    assert _account(api, token)["cash_reserved"] == D("0.00")
    return event


if __name__ == "__main__":
    # python -m tests.exchange.money_journey <base URL>: against a running server
    # (its settings from this process's environment, e.g. the embedded default's VAR_DIR).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
    import django

    django.setup()
    began = time.monotonic()
    base = sys.argv[1]
    server = http_api(base)
    result = run(server, settle=worker_settles(base))
    worker_expires(base, server, result["buyer_token"], result["symbol"])
    print(json.dumps({"symbol": result["symbol"], "invoices": result["invoices"],
                      "seconds": round(time.monotonic() - began, 1)}))
