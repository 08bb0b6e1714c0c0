"""Cash out of the clearing house: withdrawal requests under four eyes, paid
only to the organisation's verified payout account, which two operators
verify; and the clearing house's claims against members.

Design: docs/architecture.md, "Fees, funds and withdrawals (issue 4)" and
"Settlement policy and payout accounts (issue 7, items 9 and 10)". The
requested amount waits in the member's ``withdrawal_pending`` account until
a second operator pays it out (to the bank) or it is returned to cash
available (rejected by an operator, cancelled by the member). Every state
change is one conditional UPDATE from ``requested``, so a request is decided
exactly once; every decision is audited in the same transaction. After
claiming the request row, each transaction locks the organisation
(``exchange.locks.lock_organisations``) before it posts.
"""

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from stdnum import iban as stdnum_iban
from stdnum.exceptions import ValidationError as StdnumValidationError

from accounts.models import Membership
from accounts.selectors import kyc_status_of
from accounts.services import audit_record
from clearing.models import (
    HOLDER_NAME_MAX_LENGTH,
    Account,
    JournalEntry,
    PayoutAccount,
    PayoutAccountChange,
    WithdrawalRequest,
)
from clearing.services.ledger import (
    _account_get_or_create,
    _positive_cents,
    accounts_for,
    house_account,
    ledger_post,
)
from exchange.errors import ExchangeError
from exchange.formats import number
from exchange.locks import lock_organisations

if TYPE_CHECKING:
    from accounts.models import Organisation, User

REASON_MAX_LENGTH = 255


def withdrawal_pending_account(*, organisation: "Organisation") -> Account:
    """The organisation's withdrawal account, opened on first use."""
    account = Account.objects.filter(organisation=organisation, kind=Account.Kind.WITHDRAWAL_PENDING).first()
    return account or _account_get_or_create(organisation=organisation, kind=Account.Kind.WITHDRAWAL_PENDING)


def ccp_claim_account(*, organisation: "Organisation") -> Account:
    """The organisation's ``ccp_claim`` account (what it owes the clearing
    house; negative while it owes), opened on first use."""
    account = Account.objects.filter(organisation=organisation, kind=Account.Kind.CCP_CLAIM).first()
    return account or _account_get_or_create(organisation=organisation, kind=Account.Kind.CCP_CLAIM)


def claim_owed(*, organisation: "Organisation") -> Decimal:
    """What the organisation owes the clearing house, >= 0.00 (a read; lock the organisation to rely on it)."""
    balance = (Account.objects.filter(organisation=organisation, kind=Account.Kind.CCP_CLAIM)
               .values_list("balance", flat=True).first())
    return max(-(balance or Decimal("0.00")), Decimal("0.00"))


def _invalid(fields: dict[str, list[str]]) -> ExchangeError:
    return ExchangeError("invalid", _("The withdrawal request is invalid."), fields=fields)


def _clean_iban(iban: Any) -> str:
    try:
        return str(stdnum_iban.validate(str(iban or "")))
    except StdnumValidationError:
        raise _invalid({"iban": [_("Enter a valid IBAN, e.g. DE89 3704 0044 0532 0130 00.")]}) from None


def _clean_holder(name: Any) -> str:
    name = " ".join(str(name or "").split())
    if not name or len(name) > HOLDER_NAME_MAX_LENGTH:
        raise _invalid({"holder_name": [_("Enter the account holder's name (at most %(n)s characters).")
                                        % {"n": HOLDER_NAME_MAX_LENGTH}]})
    return name


def _clean_amount(amount: Any) -> Decimal:
    if not isinstance(amount, Decimal):
        raise _invalid({"amount": [_("Enter a positive amount in euros and cents.")]})
    try:
        return _positive_cents(amount)
    except ExchangeError:
        raise _invalid({"amount": [_("Enter a positive amount in euros and cents.")]}) from None


def _snapshot(request: WithdrawalRequest) -> dict[str, Any]:
    return {"status": request.status, "amount": str(request.amount), "iban": request.iban}


def _no_payout_account() -> ExchangeError:
    return _invalid({"payout_account": [_("Your organisation has no verified payout account yet. Withdrawals "
                                          "are paid only to it; request one below, two operators verify it.")]})


@transaction.atomic(durable=True)
def withdrawal_request(
    *, user: "User", amount: Decimal, entered_by: "User | None" = None
) -> WithdrawalRequest:
    """An owner of a KYC-approved member organisation asks to pay ``amount``
    out to the organisation's verified payout account (``invalid`` at
    ``payout_account`` when it has none). The amount moves from cash
    available to withdrawal pending at once; ``insufficient_funds`` (at the
    amount field) when it is not available, counting what the organisation
    owes the clearing house (``ccp_claim``) as spoken for. ``entered_by`` is
    the operator who typed the request in on the member's behalf, if one:
    that operator may not approve it either."""
    membership = Membership.objects.select_related("organisation").filter(user_id=user.pk).first()
    if membership is None or not membership.is_owner:
        raise ExchangeError("not_permitted", _("Only an owner of the organisation may request a withdrawal."))
    organisation = membership.organisation
    if organisation.is_observer:
        raise ExchangeError("not_permitted", _("Observer organisations hold no cash."))
    if kyc_status_of(organisation) != "approved":
        raise ExchangeError("kyc_not_approved",
                            _("The KYC review of %(organisation)s is not approved.")
                            % {"organisation": organisation.legal_name})
    if entered_by is not None and not (entered_by.is_staff and entered_by.is_active):
        raise ExchangeError("not_permitted", _("Only operators may enter a request on a member's behalf."))
    amount = _clean_amount(amount)
    lock_organisations([organisation.pk])
    payout_account = PayoutAccount.objects.filter(organisation=organisation).first()
    if payout_account is None:
        raise _no_payout_account()
    available = accounts_for(organisation=organisation)[Account.Kind.CASH_AVAILABLE]
    owed = claim_owed(organisation=organisation)
    if owed and amount > available.balance - owed:
        # The claim is repaid from the member's next payouts or collected by
        # an operator; cash it owes cannot leave the clearing house first.
        raise ExchangeError("insufficient_funds", _("Not enough cash available."), fields={"amount": [
            _("Your organisation owes the clearing house %(owed)s EUR from a refund; at most %(most)s EUR can be "
              "withdrawn.") % {"owed": number(owed), "most": number(max(available.balance - owed, Decimal("0.00")))}]})

    request = WithdrawalRequest.objects.create(
        organisation=organisation, amount=amount, iban=payout_account.iban,
        holder_name=payout_account.holder_name, requested_by=user, entered_by=entered_by,
    )
    pending = withdrawal_pending_account(organisation=organisation)
    try:
        # The guard of ledger_post is the whole concurrency story: the
        # debit of cash available is one conditional UPDATE, so concurrent
        # requests can never take more than there is.
        entry = ledger_post(
            kind=JournalEntry.Kind.RESERVE,
            lines=[(available, -amount), (pending, amount)],
            reference=f"withdrawal:{request.pk}",
            memo=_("Withdrawal requested"),
            actor=user,
        )
    except ExchangeError as error:
        if error.code != "insufficient_funds":
            raise
        # Raising rolls back the request row too: nothing is written.
        raise ExchangeError("insufficient_funds", error.detail,
                            fields={"amount": [_("More than your available cash.")]}) from None
    WithdrawalRequest.objects.filter(pk=request.pk).update(hold_entry=entry)
    request.hold_entry = entry
    audit_record(actor=entered_by or user, action="withdrawal_request", organisation=organisation, obj=request,
                 before={}, after=_snapshot(request))
    return request


def _check_operator(operator: "User") -> None:
    if not (operator.is_staff and operator.is_active):
        raise ExchangeError("not_permitted", _("Only operators may decide withdrawal requests."))


def _claim(request: WithdrawalRequest, *, status: str, decided_by: "User", reason: str) -> WithdrawalRequest:
    """Move the request out of ``requested`` exactly once (409 ``conflict`` if it already left)."""
    now = timezone.now()
    claimed = WithdrawalRequest.objects.filter(pk=request.pk, status=WithdrawalRequest.Status.REQUESTED).update(
        status=status, decided_by=decided_by, decided_at=now, reason=reason)
    if claimed != 1:
        raise ExchangeError("conflict", _("This withdrawal request has already been decided."))
    fresh = WithdrawalRequest.objects.select_related("organisation").get(pk=request.pk)
    lock_organisations([fresh.organisation_id])
    return fresh


def _return_to_available(request: WithdrawalRequest, *, actor: "User", memo: str) -> JournalEntry:
    accounts = accounts_for(organisation=request.organisation)
    return ledger_post(
        kind=JournalEntry.Kind.RELEASE,
        lines=[(withdrawal_pending_account(organisation=request.organisation), -request.amount),
               (accounts[Account.Kind.CASH_AVAILABLE], request.amount)],
        reference=f"withdrawal:{request.pk}",
        memo=memo,
        actor=actor,
    )


def _finish(request: WithdrawalRequest, *, entry: JournalEntry, actor: "User", action: str,
            before: dict[str, Any]) -> WithdrawalRequest:
    WithdrawalRequest.objects.filter(pk=request.pk).update(entry=entry)
    request.entry = entry
    audit_record(actor=actor, action=action, organisation=request.organisation, obj=request, before=before,
                 after=_snapshot(request), reason=request.reason)
    return request


def four_eyes_refusal(*, operator: "User", request: WithdrawalRequest) -> str | None:
    """Why ``operator`` may not approve ``request`` (the four-eyes rule), or None.

    The approver must be someone other than the person who requested it and
    the operator who entered it, and no member of the organisation."""
    if operator.pk == request.requested_by_id:
        return _("You requested this withdrawal yourself; a second operator must approve it.")
    if operator.pk == request.entered_by_id:
        return _("You entered this withdrawal request; a second operator must approve it (four eyes).")
    if Membership.objects.filter(user_id=operator.pk, organisation_id=request.organisation_id).exists():
        return _("You are a member of this organisation; an operator from outside it must approve.")
    return None


@transaction.atomic(durable=True)
def withdrawal_approve(*, operator: "User", request: WithdrawalRequest) -> WithdrawalRequest:
    """A second operator approves: the amount leaves the clearing bank."""
    _check_operator(operator)
    refusal = four_eyes_refusal(operator=operator, request=request)
    if refusal is not None:
        raise ExchangeError("not_permitted", refusal)
    before = _snapshot(request)
    request = _claim(request, status=WithdrawalRequest.Status.APPROVED, decided_by=operator, reason="")
    current = PayoutAccount.objects.filter(organisation_id=request.organisation_id).first()
    if current is None or current.iban != request.iban:
        # Raising undoes the claim: the request stays open for a rejection.
        raise ExchangeError("conflict", _("The organisation's payout account has changed since this request; "
                                          "reject it, and the member requests again to the new account."))
    entry = ledger_post(
        kind=JournalEntry.Kind.WITHDRAWAL,
        lines=[(withdrawal_pending_account(organisation=request.organisation), -request.amount),
               (house_account(Account.Kind.BANK), request.amount)],
        reference=f"withdrawal:{request.pk}",
        memo=_("Withdrawal paid out to %(iban)s") % {"iban": request.iban},
        actor=operator,
    )
    return _finish(request, entry=entry, actor=operator, action="withdrawal_approve", before=before)


@transaction.atomic(durable=True)
def withdrawal_reject(*, operator: "User", request: WithdrawalRequest, reason: str) -> WithdrawalRequest:
    """An operator rejects the request; the amount returns to cash available.

    Needs no second person: it only undoes the hold. A reason is required."""
    _check_operator(operator)
    reason = (reason or "").strip()
    if not reason or len(reason) > REASON_MAX_LENGTH:
        raise ExchangeError("invalid", _("Give a reason for the rejection."),
                            fields={"reason": [_("Enter a reason (at most 255 characters).")]})
    before = _snapshot(request)
    request = _claim(request, status=WithdrawalRequest.Status.REJECTED, decided_by=operator, reason=reason)
    entry = _return_to_available(request, actor=operator, memo=_("Withdrawal rejected"))
    return _finish(request, entry=entry, actor=operator, action="withdrawal_reject", before=before)


@transaction.atomic(durable=True)
def withdrawal_cancel(*, user: "User", request: WithdrawalRequest) -> WithdrawalRequest:
    """An owner of the organisation takes back a request still open."""
    if not Membership.objects.filter(user_id=user.pk, organisation_id=request.organisation_id,
                                     is_owner=True).exists():
        raise ExchangeError("not_permitted", _("Only an owner of the organisation may cancel a withdrawal."))
    before = _snapshot(request)
    request = _claim(request, status=WithdrawalRequest.Status.CANCELLED, decided_by=user, reason="")
    entry = _return_to_available(request, actor=user, memo=_("Withdrawal cancelled"))
    return _finish(request, entry=entry, actor=user, action="withdrawal_cancel", before=before)


# --- payout accounts: a change needs two operators (issue 7 item 10) ------------------------------


def _change_snapshot(change: PayoutAccountChange) -> dict[str, Any]:
    return {"status": change.status, "iban": change.iban, "holder_name": change.holder_name}


def _payout_invalid(fields: dict[str, list[str]]) -> ExchangeError:
    return ExchangeError("invalid", _("The payout account is invalid."), fields=fields)


@transaction.atomic(durable=True)
def payout_change_request(*, user: "User", iban: str, holder_name: str,
                          organisation: "Organisation | None" = None) -> PayoutAccountChange:
    """Ask to set or change an organisation's payout account.

    A member owner asks for its own organisation (``organisation``, if
    given, must be it); the change then waits for two operators. An
    operator enters one for ``organisation`` (a letter from the member):
    that counts as the first operator, so one more, different operator
    approves. One open change per organisation (``conflict``)."""
    if user.is_staff and user.is_active and organisation is not None:
        if Membership.objects.filter(user_id=user.pk, organisation_id=organisation.pk).exists():
            raise ExchangeError("not_permitted", _("You are a member of this organisation; an operator from "
                                                   "outside it must enter the change."))
        entered = True
    else:
        membership = Membership.objects.select_related("organisation").filter(user_id=user.pk).first()
        if membership is None or not membership.is_owner or (
                organisation is not None and organisation.pk != membership.organisation_id):
            raise ExchangeError("not_permitted", _("Only an owner of the organisation may change its payout "
                                                   "account."))
        organisation = membership.organisation
        entered = False
    if organisation.is_observer:
        raise ExchangeError("not_permitted", _("Observer organisations hold no cash."))
    fields: dict[str, list[str]] = {}
    for clean, name, value in ((_clean_iban, "iban", iban), (_clean_holder, "holder_name", holder_name)):
        try:
            cleaned = clean(value)
        except ExchangeError as error:
            fields.update(error.fields)
        else:
            if name == "iban":
                iban = cleaned
            else:
                holder_name = cleaned
    if fields:
        raise _payout_invalid(fields)
    lock_organisations([organisation.pk])
    if PayoutAccountChange.objects.filter(organisation=organisation,
                                          status__in=PayoutAccountChange.OPEN_STATUSES).exists():
        raise ExchangeError("conflict", _("A change of the payout account is already waiting for approval; "
                                          "cancel or reject it first."))
    now = timezone.now()
    change = PayoutAccountChange.objects.create(
        organisation=organisation, iban=iban, holder_name=holder_name, requested_by=user, requested_at=now,
        status=PayoutAccountChange.Status.FIRST_APPROVED if entered else PayoutAccountChange.Status.REQUESTED,
        first_approved_by=user if entered else None, first_approved_at=now if entered else None,
    )
    audit_record(actor=user, action="payout_change_request", organisation=organisation, obj=change,
                 before={}, after=_change_snapshot(change))
    return change


def payout_four_eyes_refusal(*, operator: "User", change: PayoutAccountChange) -> str | None:
    """Why ``operator`` may not approve ``change`` now (four eyes), or None:
    the approver is an active operator, no member of the organisation, not
    who asked for it, and not the first operator when it is the second."""
    if not (operator.is_staff and operator.is_active):
        return _("Only operators approve a payout account.")
    if Membership.objects.filter(user_id=operator.pk, organisation_id=change.organisation_id).exists():
        return _("You are a member of this organisation; an operator from outside it must approve.")
    if operator.pk == change.first_approved_by_id:
        return _("You already approved (or entered) this change; a second operator must approve it.")
    if operator.pk == change.requested_by_id:
        return _("You asked for this change yourself; two other operators must approve it.")
    return None


@transaction.atomic(durable=True)
def payout_change_approve(*, operator: "User", change: PayoutAccountChange) -> PayoutAccountChange:
    """One operator's approval. The first moves the change to
    ``first_approved``; the second, a different operator, puts the account
    in force (``PayoutAccount`` created or replaced). Each is one conditional
    UPDATE, audited; ``not_permitted`` with the reason when the rule bars
    this operator, ``conflict`` when the change is no longer open."""
    refusal = payout_four_eyes_refusal(operator=operator, change=change)
    if refusal is not None:
        raise ExchangeError("not_permitted", refusal)
    now = timezone.now()
    Status = PayoutAccountChange.Status
    rows = PayoutAccountChange.objects.filter(pk=change.pk).exclude(first_approved_by_id=operator.pk)
    if rows.filter(status=Status.REQUESTED).update(status=Status.FIRST_APPROVED, first_approved_by=operator,
                                                   first_approved_at=now) == 1:
        change = PayoutAccountChange.objects.select_related("organisation").get(pk=change.pk)
        audit_record(actor=operator, action="payout_change_first_approve", organisation=change.organisation,
                     obj=change, before={"status": Status.REQUESTED}, after=_change_snapshot(change))
        return change
    if rows.filter(status=Status.FIRST_APPROVED).update(status=Status.APPROVED, decided_by=operator,
                                                        decided_at=now) != 1:
        fresh = PayoutAccountChange.objects.get(pk=change.pk)
        if fresh.first_approved_by_id == operator.pk:
            raise ExchangeError("not_permitted", _("You already approved (or entered) this change; a second "
                                                   "operator must approve it."))
        raise ExchangeError("conflict", _("This payout account change has already been decided."))
    change = PayoutAccountChange.objects.select_related("organisation").get(pk=change.pk)
    lock_organisations([change.organisation_id])
    previous = PayoutAccount.objects.filter(organisation_id=change.organisation_id).first()
    PayoutAccount.objects.update_or_create(organisation_id=change.organisation_id, defaults={
        "iban": change.iban, "holder_name": change.holder_name, "verified_at": now, "change": change})
    audit_record(actor=operator, action="payout_change_approve", organisation=change.organisation, obj=change,
                 before={"iban": previous.iban if previous else "",
                         "holder_name": previous.holder_name if previous else ""},
                 after=_change_snapshot(change))
    return change


def _payout_change_close(change: PayoutAccountChange, *, status: str, actor: "User", reason: str,
                         action: str) -> PayoutAccountChange:
    before = _change_snapshot(change)
    if PayoutAccountChange.objects.filter(pk=change.pk, status__in=PayoutAccountChange.OPEN_STATUSES).update(
            status=status, decided_by=actor, decided_at=timezone.now(), reason=reason) != 1:
        raise ExchangeError("conflict", _("This payout account change has already been decided."))
    change = PayoutAccountChange.objects.select_related("organisation").get(pk=change.pk)
    audit_record(actor=actor, action=action, organisation=change.organisation, obj=change, before=before,
                 after=_change_snapshot(change), reason=reason)
    return change


@transaction.atomic(durable=True)
def payout_change_reject(*, operator: "User", change: PayoutAccountChange, reason: str) -> PayoutAccountChange:
    """An operator rejects an open change (one person suffices: nothing changes); a reason is required."""
    _check_operator(operator)
    reason = (reason or "").strip()
    if not reason or len(reason) > REASON_MAX_LENGTH:
        raise ExchangeError("invalid", _("Give a reason for the rejection."),
                            fields={"reason": [_("Enter a reason (at most 255 characters).")]})
    return _payout_change_close(change, status=PayoutAccountChange.Status.REJECTED, actor=operator,
                                reason=reason, action="payout_change_reject")


@transaction.atomic(durable=True)
def payout_change_cancel(*, user: "User", change: PayoutAccountChange) -> PayoutAccountChange:
    """An owner of the organisation takes back an open change."""
    if not Membership.objects.filter(user_id=user.pk, organisation_id=change.organisation_id,
                                     is_owner=True).exists():
        raise ExchangeError("not_permitted", _("Only an owner of the organisation may cancel the change."))
    return _payout_change_close(change, status=PayoutAccountChange.Status.CANCELLED, actor=user, reason="",
                                action="payout_change_cancel")


# --- the clearing house's claims (issue 7 item 9) ------------------------------------------------


@transaction.atomic(durable=True)
def ccp_claim_collect(*, operator: "User", organisation: "Organisation", reason: str) -> JournalEntry:
    """An operator collects what the organisation owes the clearing house
    from its available cash: min(owed, available), kind ``claim``, audited.
    (The seller's next payouts repay a claim by themselves.)"""
    _check_operator(operator)
    reason = (reason or "").strip()
    if not reason or len(reason) > REASON_MAX_LENGTH:
        raise ExchangeError("invalid", _("Give a reason for the collection."),
                            fields={"reason": [_("Enter a reason (at most 255 characters).")]})
    lock_organisations([organisation.pk])
    available = accounts_for(organisation=organisation)[Account.Kind.CASH_AVAILABLE]
    claim = ccp_claim_account(organisation=organisation)
    balances = dict(Account.objects.select_for_update(no_key=True).filter(pk__in=[available.pk, claim.pk])
                    .order_by("pk").values_list("pk", "balance"))
    owed = max(-balances[claim.pk], Decimal("0.00"))
    amount = min(owed, max(balances[available.pk], Decimal("0.00")))
    if amount == 0:
        raise ExchangeError("conflict", _("Nothing to collect: the organisation owes nothing or has no cash "
                                          "available."))
    entry = ledger_post(kind=JournalEntry.Kind.CLAIM, lines=[(available, -amount), (claim, amount)],
                        reference=f"claim:{organisation.pk}", memo=_("Claim of the clearing house repaid"),
                        actor=operator)
    audit_record(actor=operator, action="ccp_claim_collect", organisation=organisation, obj=entry,
                 before={"owed": str(owed)}, after={"owed": str(owed - amount), "collected": str(amount)},
                 reason=reason)
    return entry


__all__ = [
    "ccp_claim_account",
    "ccp_claim_collect",
    "claim_owed",
    "four_eyes_refusal",
    "payout_change_approve",
    "payout_change_cancel",
    "payout_change_reject",
    "payout_change_request",
    "payout_four_eyes_refusal",
    "withdrawal_approve",
    "withdrawal_cancel",
    "withdrawal_pending_account",
    "withdrawal_reject",
    "withdrawal_request",
]
