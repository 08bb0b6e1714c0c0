"""Cash out of the clearing house: withdrawal requests under four eyes.

Design: docs/architecture.md, "Fees, funds and withdrawals (issue 4)". The
requested amount waits in the member's ``withdrawal_pending`` account until
a second operator pays it out (to the bank) or it is returned to cash
available (rejected by an operator, cancelled by the member). Every state
change is one conditional UPDATE from ``requested``, so a request is decided
exactly once; every decision is audited in the same transaction.
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
from clearing.models import Account, JournalEntry, WithdrawalRequest
from clearing.services.ledger import (
    _account_get_or_create,
    _positive_cents,
    accounts_for,
    house_account,
    ledger_post,
)
from exchange.errors import ExchangeError

if TYPE_CHECKING:
    from accounts.models import Organisation, User

REASON_MAX_LENGTH = 255


def withdrawal_pending_account(*, organisation: "Organisation") -> Account:
    """The organisation's withdrawal account, opened on first use."""
    account = Account.objects.filter(organisation=organisation, kind=Account.Kind.WITHDRAWAL_PENDING).first()
    return account or _account_get_or_create(organisation=organisation, kind=Account.Kind.WITHDRAWAL_PENDING)


def _invalid(fields: dict[str, list[str]]) -> ExchangeError:
    return ExchangeError("invalid", _("The withdrawal request is invalid."), fields=fields)


def _clean_iban(iban: Any) -> str:
    try:
        return str(stdnum_iban.validate(str(iban or "")))
    except StdnumValidationError:
        raise _invalid({"iban": [_("Enter a valid IBAN, e.g. DE89 3704 0044 0532 0130 00.")]}) from None


def _clean_amount(amount: Any) -> Decimal:
    if not isinstance(amount, Decimal):
        raise _invalid({"amount": [_("Enter a positive amount in euros and cents.")]})
    try:
        return _positive_cents(amount)
    except ExchangeError:
        raise _invalid({"amount": [_("Enter a positive amount in euros and cents.")]}) from None


def _snapshot(request: WithdrawalRequest) -> dict[str, Any]:
    return {"status": request.status, "amount": str(request.amount), "iban": request.iban}


@transaction.atomic(durable=True)
def withdrawal_request(
    *, user: "User", amount: Decimal, iban: str, entered_by: "User | None" = None
) -> WithdrawalRequest:
    """An owner of a KYC-approved member organisation asks to pay ``amount``
    out to ``iban``. The amount moves from cash available to withdrawal
    pending at once; ``insufficient_funds`` (at the amount field) when it is
    not available. ``entered_by`` is the operator who typed the request in on
    the member's behalf, if one: that operator may not approve it either."""
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
    # Both fields are checked so that the form shows every error at once.
    fields: dict[str, list[str]] = {}
    try:
        amount = _clean_amount(amount)
    except ExchangeError as error:
        fields.update(error.fields)
    try:
        iban = _clean_iban(iban)
    except ExchangeError as error:
        fields.update(error.fields)
    if fields:
        raise _invalid(fields)

    request = WithdrawalRequest.objects.create(
        organisation=organisation, amount=amount, iban=iban, requested_by=user, entered_by=entered_by,
    )
    available = accounts_for(organisation=organisation)[Account.Kind.CASH_AVAILABLE]
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


__all__ = [
    "four_eyes_refusal",
    "withdrawal_approve",
    "withdrawal_cancel",
    "withdrawal_pending_account",
    "withdrawal_reject",
    "withdrawal_request",
]
