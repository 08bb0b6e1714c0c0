"""Physical delivery of spot trades and their settlement (market-rules §3, §4;
docs/architecture.md, "Delivery and settlement (issue 4)" and "Settlement
policy and payout accounts (issue 7, items 9 and 10)").

Allocation of trades to tickets lives in ``clearing.services.allocation``;
every writer here owns a durable transaction. Settlement claims each
ticket with one conditional UPDATE, so a ticket is paid exactly once however
many runners race and whatever crashes half-way. A transaction that moves
money locks, after the ticket row, the two organisations
(``exchange.locks.lock_organisations``) and then their accounts in id order.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Case, F, Q, QuerySet, When
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.selectors import membership_for
from accounts.services import audit_record
from clearing.fees import CENT, is_cents
from clearing.models import DELIVERY_CONFIRMATION_WINDOW, Account, DeliveryTicket, JournalEntry
from clearing.services.cash import ccp_claim_account
from clearing.services.ledger import accounts_for, house_account, ledger_post
from exchange.errors import ExchangeError
from exchange.formats import moment, number
from exchange.locks import lock_organisations

if TYPE_CHECKING:
    from accounts.models import Membership, User

log = logging.getLogger(__name__)

Status = DeliveryTicket.Status
# The buyer may still confirm or dispute, and the seller (re)post access.
OPEN_STATUSES = (Status.AWAITING_ACCESS, Status.ACCESS_POSTED, Status.NOT_PROVIDED)
# What an operator decides in the admin: a buyer's dispute, or a ticket whose
# access details never came (instead of the automatic full refund).
RESOLVABLE_STATUSES = (Status.DISPUTED, Status.NOT_PROVIDED)
ENDPOINT_MAX_LENGTH = 500
INSTRUCTIONS_MAX_LENGTH = 5000
REASON_MAX_LENGTH = 5000


# --- who may do what ----------------------------------------------------------------------------


def tickets_visible_to(*, user: Any) -> QuerySet[DeliveryTicket]:
    """The tickets a user may see: operators all, a member its organisation's
    (as buyer or seller), anyone else none."""
    base = DeliveryTicket.objects.select_related(
        "trade__instrument", "gpu_class", "zone", "seller", "buyer", "seller_site")
    if not getattr(user, "is_authenticated", False):
        return base.none()
    if user.is_active and user.is_staff:
        return base
    membership = membership_for(user)
    if membership is None:
        return base.none()
    org_id = membership.organisation_id
    return base.filter(Q(buyer_id=org_id) | Q(seller_id=org_id))


def may_read_access(*, user: Any, ticket: DeliveryTicket) -> bool:
    """Access details: the buyer's members and operators only (market-rules §4).
    The seller's members do not read them back (docs: "Who sees and does what")."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_active and user.is_staff:
        return True
    membership = membership_for(user)
    return membership is not None and membership.organisation_id == ticket.buyer_id


def _not_found() -> ExchangeError:
    return ExchangeError("not_found", _("No such delivery ticket."))


def _party(user: Any, ticket: DeliveryTicket, side: str) -> Membership:
    """The user's membership if it is on ``side`` of the ticket with an acting
    role; 404 when its organisation is no party at all."""
    membership = membership_for(user)
    if membership is None or membership.organisation_id not in (ticket.buyer_id, ticket.seller_id):
        raise _not_found()
    if side == "seller":
        if membership.organisation_id != ticket.seller_id:
            raise ExchangeError("not_permitted", _("Only the seller posts access details."))
        if not (membership.is_owner or membership.is_trader or membership.is_provider):
            raise ExchangeError("not_permitted", _("Posting access details needs the owner, trader or provider role."))
    else:
        if membership.organisation_id != ticket.buyer_id:
            raise ExchangeError("not_permitted", _("Only the buyer confirms or disputes a delivery."))
        if not (membership.is_owner or membership.is_trader):
            raise ExchangeError("not_permitted", _("Confirming or disputing needs the owner or trader role."))
    return membership


def _locked(ticket: DeliveryTicket) -> DeliveryTicket:
    # FOR NO KEY UPDATE: a resale ticket inserted meanwhile (its FK takes
    # FOR KEY SHARE on this row) is not blocked by it.
    return DeliveryTicket.objects.select_for_update(no_key=True, of=("self",)).get(pk=ticket.pk)


def _conflict(detail: str) -> ExchangeError:
    return ExchangeError("conflict", detail)


def _local(when: datetime) -> str:
    return moment(when)


# --- no access details at delivery start ---------------------------------------------------------


def _not_provided_due(now: datetime) -> Q:
    # Strictly after the start: access posted at the very instant of the
    # start is on time (delivery_access_post flags late only after it).
    return Q(status=Status.AWAITING_ACCESS, delivery_start__lt=now)


def tickets_flag_not_provided(*, now: datetime | None = None, organisation_id: int | None = None,
                              ticket_ids: list[int] | None = None) -> int:
    """Flag every ticket still awaiting access after its delivery start as
    ``not_provided`` (``not_provided_at`` = its delivery start); answers how
    many this call flagged.

    One conditional UPDATE, so it is idempotent and safe beside a seller
    posting access at the same moment (the UPDATE waits for that row lock and
    re-checks the status). Run by the beat job every minute and, lazily,
    before settlement and before the screens and the API show tickets;
    ``organisation_id`` / ``ticket_ids`` narrow it to what is about to be shown.
    """
    rows = DeliveryTicket.objects.filter(_not_provided_due(now or timezone.now()))
    if organisation_id is not None:
        rows = rows.filter(Q(buyer_id=organisation_id) | Q(seller_id=organisation_id))
    if ticket_ids is not None:
        rows = rows.filter(pk__in=ticket_ids)
    return rows.update(status=Status.NOT_PROVIDED, not_provided_at=F("delivery_start"))


def _flag_locked(ticket: DeliveryTicket, now: datetime) -> None:
    """The same flag on a ticket this transaction has locked (the job may lag)."""
    if ticket.status == Status.AWAITING_ACCESS and ticket.delivery_start < now:
        ticket.status = Status.NOT_PROVIDED
        ticket.not_provided_at = ticket.delivery_start
        ticket.save(update_fields=["status", "not_provided_at"])


# --- the parties' actions -----------------------------------------------------------------------


@transaction.atomic(durable=True)
def delivery_access_post(*, user: User, ticket: DeliveryTicket, endpoint: str, instructions: str,
                         now: datetime | None = None) -> DeliveryTicket:
    """The seller posts (or replaces) the access details. Allowed after
    delivery start, but then flagged late."""
    now = now or timezone.now()
    _party(user, ticket, "seller")
    endpoint = (endpoint or "").strip()
    instructions = (instructions or "").strip()
    fields: dict[str, list[str]] = {}
    if not endpoint:
        fields["endpoint"] = [_("Enter the access endpoint.")]
    elif len(endpoint) > ENDPOINT_MAX_LENGTH:
        fields["endpoint"] = [_("At most %(n)s characters.") % {"n": ENDPOINT_MAX_LENGTH}]
    if len(instructions) > INSTRUCTIONS_MAX_LENGTH:
        fields["instructions"] = [_("At most %(n)s characters.") % {"n": INSTRUCTIONS_MAX_LENGTH}]
    if fields:
        raise ExchangeError("invalid", _("The access details are invalid."), fields)
    ticket = _locked(ticket)
    _flag_locked(ticket, now)
    if ticket.status not in OPEN_STATUSES:
        raise _conflict(_("The buyer has already confirmed or disputed this delivery."))
    ticket.access_endpoint = endpoint
    ticket.access_instructions = instructions
    ticket.access_posted_at = now
    ticket.access_posted_late = now > ticket.delivery_start
    ticket.access_posted_by = user
    # Late access on a not_provided ticket stays not_provided: the buyer
    # reads it and may confirm (the seller is then paid), but without that
    # the ticket is refunded, not paid, when the window ends.
    if ticket.status != Status.NOT_PROVIDED:
        ticket.status = Status.ACCESS_POSTED
    ticket.save(update_fields=["access_endpoint", "access_instructions", "access_posted_at",
                               "access_posted_late", "access_posted_by", "status"])
    return ticket


def _buyer_action(user: User, ticket: DeliveryTicket, now: datetime) -> DeliveryTicket:
    _party(user, ticket, "buyer")
    ticket = _locked(ticket)
    _flag_locked(ticket, now)
    if ticket.status not in OPEN_STATUSES:
        raise _conflict(_("This delivery has already been confirmed or disputed."))
    if now > ticket.confirmation_deadline:
        raise _conflict(_("The confirmation window of this delivery (24 hours after its end) has passed."))
    return ticket


@transaction.atomic(durable=True)
def delivery_confirm(*, user: User, ticket: DeliveryTicket, now: datetime | None = None) -> DeliveryTicket:
    """The buyer confirms the delivery (from delivery start on); the next
    settlement run pays the seller. Before the start: ``conflict``, and a
    dispute stays possible."""
    now = now or timezone.now()
    ticket = _buyer_action(user, ticket, now)
    if now < ticket.delivery_start:
        raise _conflict(_("You can confirm this delivery once it has started, from %(start)s. If something is "
                          "already wrong, you can dispute it now.") % {"start": _local(ticket.delivery_start)})
    ticket.status = Status.CONFIRMED
    ticket.confirmed_at = now
    ticket.save(update_fields=["status", "confirmed_at"])
    return ticket


@transaction.atomic(durable=True)
def delivery_dispute(*, user: User, ticket: DeliveryTicket, reason: str,
                     now: datetime | None = None) -> DeliveryTicket:
    """The buyer disputes the delivery, also before its start (e.g. the seller
    said it cannot deliver); the money stays pending until an operator resolves it."""
    now = now or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise ExchangeError("invalid", _("Say what went wrong."), {"reason": [_("Enter a reason.")]})
    if len(reason) > REASON_MAX_LENGTH:
        raise ExchangeError("invalid", _("Say what went wrong."),
                            {"reason": [_("At most %(n)s characters.") % {"n": REASON_MAX_LENGTH}]})
    ticket = _buyer_action(user, ticket, now)
    ticket.status = Status.DISPUTED
    ticket.disputed_at = now
    ticket.dispute_reason = reason
    ticket.save(update_fields=["status", "disputed_at", "dispute_reason"])
    return ticket


@transaction.atomic(durable=True)
def dispute_resolve(*, operator: User, ticket: DeliveryTicket, refund_amount: Decimal, reason: str,
                    now: datetime | None = None) -> DeliveryTicket:
    """An operator resolves a dispute, or decides a ``not_provided`` ticket,
    with a refund of 0..V_t to the buyer, charged to the seller; audited, and
    settled in the same transaction. What the seller's available cash cannot
    carry the clearing house advances, as its claim against the seller."""
    now = now or timezone.now()
    if not (operator.is_active and operator.is_staff):
        raise ExchangeError("not_permitted", _("Only operators resolve disputes."))
    reason = (reason or "").strip()
    fields: dict[str, list[str]] = {}
    if not reason:
        fields["reason"] = [_("Enter a reason.")]
    if not is_cents(refund_amount) or refund_amount < 0 or refund_amount > ticket.value:
        fields["refund_amount"] = [_("The refund is an amount in whole cents between 0.00 and the "
                                     "ticket's value %(value)s.") % {"value": number(ticket.value)}]
    if fields:
        raise ExchangeError("invalid", _("The resolution is invalid."), fields)
    ticket = _locked(ticket)
    lock_organisations([ticket.buyer_id, ticket.seller_id])
    _flag_locked(ticket, now)
    if ticket.status not in RESOLVABLE_STATUSES:
        raise _conflict(_("Only a disputed delivery, or one whose access details were not provided, can be "
                          "resolved."))
    before = {"status": ticket.status}
    ticket.status = Status.RESOLVED
    ticket.refund_amount = refund_amount.quantize(CENT)
    ticket.resolution_reason = reason
    ticket.resolved_by = operator
    ticket.resolved_at = now
    ticket.save(update_fields=["status", "refund_amount", "resolution_reason", "resolved_by", "resolved_at"])
    audit_record(actor=operator, action="delivery.dispute_resolve", organisation=ticket.seller, obj=ticket,
                 before=before, after={"status": Status.RESOLVED, "refund_amount": str(ticket.refund_amount),
                                       "buyer": ticket.buyer_id},
                 reason=reason)
    if not _claim(ticket.pk, now):
        raise _conflict(_("This delivery has already been settled."))
    _settle_claimed(DeliveryTicket.objects.get(pk=ticket.pk))
    ticket.refresh_from_db()
    return ticket


@transaction.atomic(durable=True)
def delivery_hold(*, operator: User, ticket: DeliveryTicket, reason: str,
                  now: datetime | None = None) -> DeliveryTicket:
    """An operator stops the automatic full refund of a ``not_provided``
    ticket (e.g. the seller shows the access was given another way) until an
    operator decides it with ``dispute_resolve``; audited, with a reason.
    The buyer may still confirm or dispute it."""
    now = now or timezone.now()
    if not (operator.is_active and operator.is_staff):
        raise ExchangeError("not_permitted", _("Only operators hold a delivery."))
    reason = (reason or "").strip()
    if not reason or len(reason) > REASON_MAX_LENGTH:
        raise ExchangeError("invalid", _("Give a reason for the hold."),
                            {"reason": [_("Enter a reason (at most %(n)s characters).") % {"n": REASON_MAX_LENGTH}]})
    ticket = _locked(ticket)
    _flag_locked(ticket, now)
    if ticket.status != Status.NOT_PROVIDED:
        raise _conflict(_("Only a delivery whose access details were not provided can be held."))
    if ticket.held_at is not None:
        raise _conflict(_("This delivery is already on hold."))
    ticket.held_at = now
    ticket.held_by = operator
    ticket.hold_reason = reason
    ticket.save(update_fields=["held_at", "held_by", "hold_reason"])
    audit_record(actor=operator, action="delivery.hold", organisation=ticket.seller, obj=ticket,
                 before={"status": ticket.status, "held": False},
                 after={"status": ticket.status, "held": True, "buyer": ticket.buyer_id}, reason=reason)
    return ticket


# --- settlement ---------------------------------------------------------------------------------


def _due(now: datetime) -> Q:
    window_passed = Q(delivery_end__lte=now - DELIVERY_CONFIRMATION_WINDOW)
    return Q(settled_at__isnull=True) & (
        Q(status__in=(Status.CONFIRMED, Status.RESOLVED))
        # Access came on time and the buyer neither confirmed nor disputed: paid.
        | (Q(status=Status.ACCESS_POSTED) & window_passed)
        # Access missing at delivery start, nobody decided: refunded in full,
        # unless an operator holds it for a decision.
        | (Q(status=Status.NOT_PROVIDED, held_at__isnull=True) & window_passed))


def _claim(ticket_id: int, now: datetime) -> bool:
    """Exactly one caller gets True per ticket: the conditional UPDATE waits
    for a concurrent claimer's row lock and re-checks on its committed row.
    A ``not_provided`` ticket is claimed with the full refund (the SET
    expressions read the row as it was before the UPDATE)."""
    return DeliveryTicket.objects.filter(_due(now), pk=ticket_id).update(
        status=Status.SETTLED, settled_at=now,
        refund_amount=Case(When(status=Status.NOT_PROVIDED, then=F("value")), default=F("refund_amount"))) == 1


def _lock_accounts(accounts: list[Account]) -> dict[int, Decimal]:
    """Lock the member accounts of an entry in id order (the last level of
    the lock order) and answer their balances as of the lock."""
    return dict(Account.objects.select_for_update(no_key=True).filter(pk__in=[a.pk for a in accounts])
                .order_by("pk").values_list("pk", "balance"))


def _settlement_lines(ticket: DeliveryTicket) -> tuple[str, list[tuple[Account, Decimal]]]:
    """The payout or refund entry of a claimed ticket (docs: "Settlement" and
    "Refund beyond the seller's cash").

    The seller's net ``N = (V - Fs) - X``. ``N >= 0``: it goes first to the
    clearing house's open claim against the seller, the rest to its cash.
    ``N < 0``: the seller pays from its available cash what it has, and the
    rest is booked to its ``ccp_claim`` (negative: it owes it). Either way
    the buyer gets its refund in full."""
    buyer = accounts_for(organisation=ticket.buyer)
    seller = accounts_for(organisation=ticket.seller)
    claim = ccp_claim_account(organisation=ticket.seller)
    seller_cash = seller[Account.Kind.CASH_AVAILABLE]
    balances = _lock_accounts([buyer[Account.Kind.SETTLEMENT_PENDING], buyer[Account.Kind.CASH_AVAILABLE],
                               seller[Account.Kind.SETTLEMENT_PENDING], seller_cash, claim])
    value, payout = ticket.value, ticket.value - ticket.seller_fee
    refund = ticket.refund_amount or Decimal("0.00")
    net = payout - refund
    if net >= 0:
        owed = max(-balances[claim.pk], Decimal("0.00"))
        to_claim = min(net, owed)  # repays the claim: positive
    else:
        available = max(balances[seller_cash.pk], Decimal("0.00"))
        to_claim = -(-net - min(-net, available))  # the part of the excess the CCP advances: negative
    kind = JournalEntry.Kind.REFUND if refund else JournalEntry.Kind.SETTLEMENT
    candidates = [
        (buyer[Account.Kind.SETTLEMENT_PENDING], -value),
        (buyer[Account.Kind.CASH_AVAILABLE], refund),
        (house_account(Account.Kind.CCP), value),
        (seller[Account.Kind.SETTLEMENT_PENDING], -payout),
        (seller_cash, net - to_claim),
        (claim, to_claim),
    ]
    return kind, [(account, amount) for account, amount in candidates if amount != 0]


def _settlement_memo(lines: list[tuple[Account, Decimal]]) -> str:
    for account, amount in lines:
        if account.kind == Account.Kind.CCP_CLAIM and amount < 0:
            return _("The clearing house advanced %(amount)s EUR of the refund beyond the seller's cash; "
                     "the seller owes it.") % {"amount": number(-amount)}
        if account.kind == Account.Kind.CCP_CLAIM:
            return _("%(amount)s EUR of the payout repaid the clearing house's claim.") % {"amount": number(amount)}
    return ""


def _settle_claimed(ticket: DeliveryTicket) -> JournalEntry:
    """Post the payout or refund of a claimed ticket. Its fees are invoiced
    with the month's (``clearing.services.fees``), not here."""
    kind, lines = _settlement_lines(ticket)
    entry = ledger_post(kind=kind, lines=lines, reference=f"delivery:{ticket.pk}", memo=_settlement_memo(lines),
                        actor=ticket.resolved_by if ticket.refund_amount is not None else None)
    DeliveryTicket.objects.filter(pk=ticket.pk).update(settlement_entry=entry)
    return entry


def ticket_settle(*, ticket_id: int, now: datetime) -> bool:
    """Settle one ticket in its own durable transaction; False if it was not
    due or somebody else settled it first."""
    with transaction.atomic(durable=True):
        tickets_flag_not_provided(now=now, ticket_ids=[ticket_id])
        if not _claim(ticket_id, now):
            return False
        ticket = DeliveryTicket.objects.select_related(
            "trade__instrument", "buyer", "seller", "resolved_by").get(pk=ticket_id)
        lock_organisations([ticket.buyer_id, ticket.seller_id])
        _settle_claimed(ticket)
        transaction.on_commit(lambda: _publish_settled(ticket, now), robust=True)
        return True


def _publish_settled(ticket: DeliveryTicket, now: datetime) -> None:
    """Tell both parties' open screens (``/ws/private/``) that the ticket is
    settled: from a Celery job too, over the shared channel layer (docs/embedded.md)."""
    # Imported here: market depends on clearing, not the other way round at import time.
    from market import broadcast

    event = {"type": "delivery", "id": ticket.pk, "instrument": ticket.trade.instrument.symbol,
             "status": Status.SETTLED.value, "settled_at": now.isoformat()}
    broadcast.publish([broadcast.private_message(organisation_id, event)
                       for organisation_id in sorted({ticket.buyer_id, ticket.seller_id})])


def deliveries_settle(*, now: datetime | None = None) -> int:
    """Settle every due ticket exactly once: pay out the confirmed, the
    resolved and those whose window passed with access posted on time;
    refund in full those whose access was not provided (unless held).
    Returns how many this run settled. A ticket whose transaction fails is
    logged and left for the next run."""
    now = now or timezone.now()
    tickets_flag_not_provided(now=now)
    due = list(DeliveryTicket.objects.filter(_due(now)).order_by("pk").values_list("pk", flat=True))
    settled = 0
    for ticket_id in due:
        try:
            settled += ticket_settle(ticket_id=ticket_id, now=now)
        except ExchangeError as error:
            log.error("delivery ticket %s not settled: %s %s", ticket_id, error.code, error.detail)
    return settled
