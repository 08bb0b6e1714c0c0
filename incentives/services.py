"""Writes of the start-up incentives: the start financing, programmes,
applications, credit grants and their expiry (issue 12; docs/incentives.md)."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Membership
from accounts.selectors import membership_for
from accounts.services import _send_mail_on_commit, audit_record
from clearing.fees import CENT, is_cents
from clearing.models import Account, JournalEntry, JournalLine
from clearing.services.ledger import Posting, house_account, ledger_accounts, ledger_post_all
from exchange.errors import ExchangeError
from exchange.formats import moment, number
from exchange.locks import lock_organisations
from exchange.site import absolute_url
from incentives.models import (
    APPLICATION_PLAN_MAX_LENGTH,
    REASON_MAX_LENGTH,
    Application,
    CreditGrant,
    Programme,
    StartFinancing,
)
from incentives.rules import GrantState, add_calendar_months, allocate_spent, matching_cap, repayment_amount
from incentives.selectors import (
    credit_balances,
    credits_spent,
    may_apply,
    own_purchases,
    programme_eligibility,
    programme_granted,
    reason_texts,
)

if TYPE_CHECKING:
    from accounts.models import User

_AMOUNT_LIMIT = Decimal("1e16")


@transaction.atomic(durable=True)
def start_financing_book(*, operator: User, amount: Decimal, repayment_share: Decimal, reason: str) -> StartFinancing:
    """Book the state's start financing: the incentive fund rises by
    ``amount`` and the ``start_financing`` house account (what the exchange
    owes the state) falls by it, in one entry; audited with the reason."""
    if not (operator.is_staff and operator.is_active):
        raise ExchangeError("not_permitted", _("Only operators may book the start financing."), status=403)
    fields: dict[str, list[str]] = {}
    if not isinstance(amount, Decimal) or not is_cents(amount) or amount <= 0 or amount >= _AMOUNT_LIMIT:
        fields["amount"] = [_("Enter a positive amount in euros and cents.")]
    if not isinstance(repayment_share, Decimal) or not repayment_share.is_finite() or not (
            Decimal("0") < repayment_share <= Decimal("1")) or repayment_share != repayment_share.quantize(
            Decimal("0.0001")):
        fields["repayment_share"] = [_("Enter a share above 0 and at most 1, e.g. 0.5.")]
    reason = (reason or "").strip()
    if not reason or len(reason) > 255:
        fields["reason"] = [_("Enter the reason (at most 255 characters).")]
    if fields:
        raise ExchangeError("invalid", _("The start financing is invalid."), fields=fields)
    amount = amount.quantize(CENT)
    entry = ledger_post_all([Posting(
        kind=JournalEntry.Kind.START_FINANCING, reference="start-financing", memo=reason[:255], actor=operator,
        lines=[(house_account(Account.Kind.INCENTIVE_FUND), amount),
               (house_account(Account.Kind.START_FINANCING), -amount)])])[0]
    financing = StartFinancing.objects.create(amount=amount, repayment_share=repayment_share, reason=reason,
                                              booked_by=operator, entry=entry)
    audit_record(actor=operator, action="incentives.start_financing_book", organisation=None, obj=financing,
                 before={}, after={"amount": str(amount), "repayment_share": str(repayment_share),
                                   "entry": entry.pk}, reason=reason)
    return financing


def financing_repayment_posting(*, month: date, net_revenue: Decimal) -> Posting | None:
    """The month's repayment of the start financing, for the monthly sweep
    (``clearing.services.fees._sweep``) to post in its own transaction.

    Locks the ``start_financing`` account row (``no_key``: it only
    serialises two sweeps, so that two months swept at once can never repay
    more than is owed), then reads what is owed from its lines. None when
    nothing is owed or nothing is due."""
    financing = StartFinancing.objects.order_by("-booked_at", "-id").first()
    if financing is None:
        return None
    account = house_account(Account.Kind.START_FINANCING)
    Account.objects.select_for_update(no_key=True).filter(pk=account.pk).values_list("pk").first()
    balance = JournalLine.objects.filter(account=account).aggregate(total=Sum("amount"))["total"] or Decimal("0")
    amount = repayment_amount(net_revenue=net_revenue, share=financing.repayment_share, owed=-balance)
    if amount <= 0:
        return None
    return Posting(kind=JournalEntry.Kind.FINANCING_REPAYMENT, reference=f"financing-repayment:{month:%Y-%m}",
                   memo=f"{month:%Y-%m}: {financing.repayment_share} x {net_revenue} EUR",
                   lines=[(house_account(Account.Kind.FEE_REVENUE), -amount), (account, amount)])


# --- programmes, applications, credits (issue 12 parts 2-6; docs/incentives.md) ------------


def _require_operator(operator: User, what: str) -> None:
    if not (operator.is_staff and operator.is_active):
        raise ExchangeError("not_permitted", what, status=403)


def _programme_snapshot(programme: Programme) -> dict[str, Any]:
    return {"status": programme.status, "budget": str(programme.budget)}


def _lock_programme(programme_id: int) -> Programme:
    """The Programme row FOR NO KEY UPDATE: it serialises the approvals (and
    the opening and closing) of one programme, so that what is left of its
    budget is read after the previous approval committed. Taken first, before
    any organisation or account (docs/architecture.md, lock order)."""
    programme = Programme.objects.select_for_update(no_key=True).filter(pk=programme_id).first()
    if programme is None:
        raise ExchangeError("not_found", _("No such programme."))
    return programme


@transaction.atomic(durable=True)
def programme_open(*, operator: User, programme: Programme) -> Programme:
    """Open a draft programme: its budget moves from the incentive fund to
    the programme budgets in one entry. The fund is guarded: more than it
    holds is refused (``insufficient_funds``) and nothing is written."""
    _require_operator(operator, _("Only operators may open a programme."))
    programme = _lock_programme(programme.pk)
    if programme.status != Programme.Status.DRAFT:
        raise ExchangeError("conflict", _("Only a draft programme can be opened."))
    before = _programme_snapshot(programme)
    try:
        entry = ledger_post_all([Posting(
            kind=JournalEntry.Kind.PROGRAMME_BUDGET, reference=f"programme-open:{programme.pk}",
            memo=programme.name[:255], actor=operator,
            lines=[(house_account(Account.Kind.INCENTIVE_FUND), -programme.budget),
                   (house_account(Account.Kind.PROGRAMME_BUDGETS), programme.budget)])])[0]
    except ExchangeError as error:
        if error.code != "insufficient_funds":
            raise
        raise ExchangeError("insufficient_funds", error.detail, fields={"budget": [
            _("The incentive fund holds less than this budget.")]}) from None
    now = timezone.now()
    Programme.objects.filter(pk=programme.pk).update(status=Programme.Status.OPEN, opened_by=operator,
                                                     opened_at=now, opened_entry=entry)
    programme.refresh_from_db()
    audit_record(actor=operator, action="incentives.programme_open", organisation=None, obj=programme,
                 before=before, after={**_programme_snapshot(programme), "entry": entry.pk})
    return programme


@transaction.atomic(durable=True)
def programme_close(*, operator: User, programme: Programme) -> Programme:
    """Close an open programme: what was not granted (budget - grants)
    returns to the incentive fund. Granted credits stay valid until they
    expire; their unused part returns to the fund then."""
    _require_operator(operator, _("Only operators may close a programme."))
    programme = _lock_programme(programme.pk)
    if programme.status != Programme.Status.OPEN:
        raise ExchangeError("conflict", _("Only an open programme can be closed."))
    before = _programme_snapshot(programme)
    unspent = programme.budget - programme_granted(programme)
    entry = None
    if unspent > 0:
        entry = ledger_post_all([Posting(
            kind=JournalEntry.Kind.PROGRAMME_BUDGET, reference=f"programme-close:{programme.pk}",
            memo=programme.name[:255], actor=operator,
            lines=[(house_account(Account.Kind.PROGRAMME_BUDGETS), -unspent),
                   (house_account(Account.Kind.INCENTIVE_FUND), unspent)])])[0]
    # Open applications cannot be granted any more.
    Application.objects.filter(programme=programme, status=Application.Status.SUBMITTED).update(
        status=Application.Status.REJECTED, decided_by=operator, decided_at=timezone.now(),
        reason=_("The programme was closed."))
    Programme.objects.filter(pk=programme.pk).update(status=Programme.Status.CLOSED, closed_by=operator,
                                                     closed_at=timezone.now(), closed_entry=entry)
    programme.refresh_from_db()
    audit_record(actor=operator, action="incentives.programme_close", organisation=None, obj=programme,
                 before=before, after={**_programme_snapshot(programme), "returned": str(unspent),
                                       "entry": entry.pk if entry else None})
    return programme


def _clean_amount(amount: Any, field: str = "amount") -> Decimal:
    if not isinstance(amount, Decimal) or not is_cents(amount) or amount <= 0 or amount >= _AMOUNT_LIMIT:
        raise ExchangeError("invalid", _("The amount is invalid."),
                            fields={field: [_("Enter a positive amount in euros and cents.")]})
    return amount.quantize(CENT)


def _application_snapshot(application: Application) -> dict[str, Any]:
    return {"status": application.status, "requested_amount": str(application.requested_amount),
            "decided_amount": str(application.decided_amount) if application.decided_amount is not None else None,
            "first_approver": application.first_approver_id}


@transaction.atomic(durable=True)
def application_submit(*, user: User, programme: Programme, plan: str, amount: Decimal | None = None) -> Application:
    """An owner or trader of a member organisation applies for ``amount``
    (default: the programme's maximum grant) with a short plan. Refused with
    ``not_eligible`` and the reasons in words when the organisation is not
    eligible; ``conflict`` while an application of it is open; nothing is
    written on a refusal. The operators are told by e-mail."""
    membership = membership_for(user)
    if membership is None or not may_apply(membership):
        raise ExchangeError("not_permitted", _("Only an owner or trader of a member organisation may apply."))
    organisation = membership.organisation
    today = timezone.localdate()
    fields: dict[str, list[str]] = {}
    plan = (plan or "").strip()
    if not plan or len(plan) > APPLICATION_PLAN_MAX_LENGTH:
        fields["plan"] = [_("Describe your plan in at most %(max)d characters.")
                          % {"max": APPLICATION_PLAN_MAX_LENGTH}]
    if amount is None:
        amount = programme.max_grant
    if not isinstance(amount, Decimal) or not is_cents(amount) or amount <= 0 or amount >= _AMOUNT_LIMIT:
        fields["amount"] = [_("Enter a positive amount in euros and cents.")]
    elif amount > programme.max_grant:
        fields["amount"] = [_("At most %(max)s EUR per organisation.") % {"max": number(programme.max_grant)}]
    if fields:
        raise ExchangeError("invalid", _("The application is invalid."), fields=fields)
    if programme.status != Programme.Status.OPEN or not (programme.starts_on <= today <= programme.ends_on):
        raise ExchangeError("conflict", _("This programme does not take applications now."))
    reasons = programme_eligibility(programme, organisation, today)
    if reasons:
        texts = reason_texts(reasons)
        raise ExchangeError("not_eligible", " ".join(texts), fields={"programme": texts}, status=403)
    try:
        with transaction.atomic():
            application = Application.objects.create(
                programme=programme, organisation=organisation, applicant=user, plan=plan,
                requested_amount=amount.quantize(CENT))
    except IntegrityError:
        raise ExchangeError("conflict", _("Your organisation has an open application for this programme "
                                          "already.")) from None
    audit_record(actor=user, action="incentives.application_submit", organisation=organisation, obj=application,
                 before={}, after=_application_snapshot(application))
    _send_mail_on_commit(
        to=settings.OPERATOR_EMAILS, subject=gettext_lazy("Incentive application: %(organisation)s"),
        template="incentives/email/application_submitted.txt",
        context={"organisation": organisation.legal_name, "programme": programme.name,
                 "amount": number(application.requested_amount),
                 "url": absolute_url(reverse("admin:incentives_application_change", args=[application.pk])),
                 "subject_args": {"organisation": organisation.legal_name}})
    return application


@transaction.atomic(durable=True)
def application_withdraw(*, user: User, application: Application) -> Application:
    """A member of the organisation withdraws its open application."""
    membership = membership_for(user)
    if membership is None or membership.organisation_id != application.organisation_id or not may_apply(membership):
        raise ExchangeError("not_permitted", _("Only an owner or trader of the organisation may withdraw it."))
    before = _application_snapshot(application)
    if Application.objects.filter(pk=application.pk, status=Application.Status.SUBMITTED).update(
            status=Application.Status.WITHDRAWN, decided_by=user, decided_at=timezone.now()) != 1:
        raise ExchangeError("conflict", _("This application has already been decided."))
    application.refresh_from_db()
    audit_record(actor=user, action="incentives.application_withdraw", organisation=application.organisation,
                 obj=application, before=before, after=_application_snapshot(application))
    return application


def grant_expiry(moment: datetime, validity_months: int) -> datetime:
    """The end of the day ``validity_months`` after ``moment``, Europe/Berlin."""
    day = add_calendar_months(timezone.localtime(moment).date(), validity_months)
    return datetime.combine(day, time(23, 59, 59), tzinfo=timezone.get_current_timezone())


def approval_limit(*, programme: Programme, application: Application) -> tuple[Decimal, dict[str, Decimal]]:
    """The most this application may be granted now, and the caps behind
    it: requested, max grant less what the organisation already holds from
    the programme, the programme's remaining budget, and (with a matching
    ratio) ratio x own purchases less what it already holds."""
    already = (CreditGrant.objects.filter(programme=programme, organisation_id=application.organisation_id)
               .aggregate(total=Sum("amount"))["total"] or Decimal("0.00"))
    caps = {"requested": application.requested_amount,
            "max_grant": programme.max_grant - already,
            "budget": programme.budget - programme_granted(programme)}
    matching = matching_cap(ratio=programme.matching_ratio, own_purchases=own_purchases(application.organisation))
    if matching is not None:
        caps["matching"] = matching - already
    return max(min(caps.values()), Decimal("0.00")), caps


def _approval_refusal(amount: Decimal, caps: dict[str, Decimal]) -> ExchangeError | None:
    texts = {
        "requested": _("More than the organisation applied for (%(cap)s EUR)."),
        "max_grant": _("More than the programme's maximum grant per organisation allows (%(cap)s EUR left)."),
        "budget": _("More than is left of the programme's budget (%(cap)s EUR)."),
        "matching": _("More than the matching rule allows: at most %(cap)s EUR for the organisation's own "
                      "purchases so far."),
    }
    broken = [texts[name] % {"cap": number(max(cap, Decimal("0.00")))} for name, cap in caps.items() if amount > cap]
    if not broken:
        return None
    code = "insufficient_funds" if amount > caps["budget"] else "invalid"
    return ExchangeError(code, " ".join(broken), fields={"amount": broken})


def _approval_four_eyes_refusal(operator: User, application: Application) -> str | None:
    if Membership.objects.filter(user_id=operator.pk, organisation_id=application.organisation_id).exists():
        return _("You are a member of this organisation; an operator from outside it must decide.")
    if operator.pk == application.first_approver_id:
        return _("You gave the first approval; a second operator must complete it (four eyes).")
    return None


@transaction.atomic(durable=True)
def application_approve(*, operator: User, application: Application, amount: Decimal | None = None) -> Application:
    """Approve ``amount`` (default: the requested amount, or the first
    approval's). Locks the programme row first, then checks the amount
    against the caps of ``approval_limit``. Up to
    ``INCENTIVE_FOUR_EYES_THRESHOLD`` one operator grants; above it the first
    approval is only recorded and a second, different operator grants the
    same amount. Granting creates the ``CreditGrant`` and posts
    programme_budgets -amount / member credits +amount."""
    _require_operator(operator, _("Only operators may decide applications."))
    refusal = _approval_four_eyes_refusal(operator, application)
    if refusal is not None:
        raise ExchangeError("not_permitted", refusal)
    programme = _lock_programme(application.programme_id)
    application = Application.objects.select_related("organisation").get(pk=application.pk)
    refusal = _approval_four_eyes_refusal(operator, application)  # re-read after the lock
    if refusal is not None:
        raise ExchangeError("not_permitted", refusal)
    if application.status != Application.Status.SUBMITTED:
        raise ExchangeError("conflict", _("This application has already been decided."))
    if programme.status != Programme.Status.OPEN:
        raise ExchangeError("conflict", _("The programme is not open."))
    if application.first_approver_id is not None:
        if amount is None:
            amount = application.first_approved_amount
        elif amount != application.first_approved_amount:
            raise ExchangeError("invalid", _("The second approval confirms the first one's amount."), fields={
                "amount": [_("The first approval was for %(amount)s EUR; approve that amount or reject.")
                           % {"amount": number(application.first_approved_amount or Decimal("0.00"))}]})
    amount = _clean_amount(application.requested_amount if amount is None else amount)
    _limit, caps = approval_limit(programme=programme, application=application)
    error = _approval_refusal(amount, caps)
    if error is not None:
        raise error
    before = _application_snapshot(application)
    now = timezone.now()
    if application.first_approver_id is None and amount > settings.INCENTIVE_FOUR_EYES_THRESHOLD:
        Application.objects.filter(pk=application.pk).update(first_approver=operator, first_approved_at=now,
                                                             first_approved_amount=amount)
        application.refresh_from_db()
        audit_record(actor=operator, action="incentives.application_first_approve",
                     organisation=application.organisation, obj=application, before=before,
                     after=_application_snapshot(application))
        return application
    expires_at = grant_expiry(now, programme.credit_validity_months)
    Application.objects.filter(pk=application.pk).update(status=Application.Status.APPROVED, decided_by=operator,
                                                         decided_at=now, decided_amount=amount)
    book = ledger_accounts(organisation_ids=[application.organisation_id])
    grant = CreditGrant(organisation_id=application.organisation_id, programme=programme, application=application,
                        amount=amount, granted_at=now, expires_at=expires_at)
    # The grant's id goes into the entry's reference: draw it first.
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [CreditGrant._meta.db_table])
        grant.pk = cursor.fetchone()[0]
    grant.entry = ledger_post_all([Posting(
        kind=JournalEntry.Kind.CREDIT_GRANT, reference=f"credit-grant:{grant.pk}",
        memo=programme.name[:255], actor=operator,
        lines=[(book.house(Account.Kind.PROGRAMME_BUDGETS), -amount),
               (book.member(application.organisation_id, Account.Kind.CREDITS), amount)])])[0]
    grant.save(force_insert=True)
    application.refresh_from_db()
    audit_record(actor=operator, action="incentives.application_approve", organisation=application.organisation,
                 obj=application, before=before,
                 after={**_application_snapshot(application), "grant": grant.pk, "expires_at": expires_at.isoformat()})
    _mail_decision(application, decision="approve", expires_at=expires_at)
    return application


@transaction.atomic(durable=True)
def application_reject(*, operator: User, application: Application, reason: str) -> Application:
    """Reject an open application; the reason is required and mailed."""
    _require_operator(operator, _("Only operators may decide applications."))
    reason = (reason or "").strip()
    if not reason or len(reason) > REASON_MAX_LENGTH:
        raise ExchangeError("invalid", _("Give a reason for the rejection."),
                            fields={"reason": [_("Enter a reason (at most 255 characters).")]})
    before = _application_snapshot(application)
    if Application.objects.filter(pk=application.pk, status=Application.Status.SUBMITTED).update(
            status=Application.Status.REJECTED, decided_by=operator, decided_at=timezone.now(), reason=reason) != 1:
        raise ExchangeError("conflict", _("This application has already been decided."))
    application = Application.objects.select_related("organisation", "programme").get(pk=application.pk)
    audit_record(actor=operator, action="incentives.application_reject", organisation=application.organisation,
                 obj=application, before=before, after=_application_snapshot(application), reason=reason)
    _mail_decision(application, decision="reject")
    return application


def _mail_decision(application: Application, *, decision: str, expires_at: datetime | None = None) -> None:
    organisation = application.organisation
    to = Membership.objects.filter(organisation=organisation, user__is_active=True).values_list("user__email",
                                                                                                flat=True)
    subjects = {"approve": gettext_lazy("Your incentive application is approved: %(programme)s"),
                "reject": gettext_lazy("Your incentive application was rejected: %(programme)s")}
    _send_mail_on_commit(
        to=list(to), subject=subjects[decision], template="incentives/email/application_decision.txt",
        context={"organisation": organisation.legal_name, "programme": application.programme.name,
                 "decision": decision, "reason": application.reason,
                 "amount": number(application.decided_amount) if application.decided_amount else "",
                 "expires_at": moment(expires_at, "DATETIME_FORMAT") if expires_at else "",
                 "url": absolute_url(reverse("incentives")),
                 "subject_args": {"programme": application.programme.name}})


def credits_expire(*, now: datetime | None = None) -> int:
    """Return the unused part of every grant past its expiry to the fund;
    answers how many expiry entries were posted. One durable transaction per
    organisation (``_expire_organisation``); safe to run twice or at once."""
    now = now or timezone.now()
    org_ids = list(CreditGrant.objects.filter(expires_at__lt=now).exclude(expired_amount=F("amount"))
                   .order_by().values_list("organisation_id", flat=True).distinct())
    return sum(_expire_organisation(org_id, now) for org_id in sorted(org_ids))


@transaction.atomic(durable=True)
def _expire_organisation(organisation_id: int, now: datetime) -> int:
    """Lock the organisation (the order path spends its credits under the
    same lock), then read: spent so far = granted - expired - (credits +
    credits reserved), allocated to the grants earliest expiry first; what
    is neither spent nor expired of a grant past its expiry returns to the
    fund, never more than the ``credits`` balance (credit reserved by a
    resting order stays until released; a later run catches it)."""
    lock_organisations([organisation_id])
    grants = list(CreditGrant.objects.filter(organisation_id=organisation_id).order_by("expires_at", "id"))
    used = allocate_spent([GrantState(g.pk, g.amount, g.expired_amount or Decimal("0.00")) for g in grants],
                          credits_spent(organisation_id))
    available, _reserved = credit_balances(organisation_id)
    book = ledger_accounts(organisation_ids=[organisation_id])
    posted = 0
    for grant in grants:
        if grant.expires_at >= now:
            continue
        expired = grant.expired_amount or Decimal("0.00")
        amount = min(grant.amount - used[grant.pk] - expired, available)
        if amount <= 0:
            if grant.expired_amount is None:  # nothing left: mark it seen
                CreditGrant.objects.filter(pk=grant.pk, expired_amount__isnull=True).update(
                    expired_amount=Decimal("0.00"), expired_at=now)
            continue
        # The claim: the row's expired amount as read; a run that got here
        # first changed it, and this one books nothing for the grant.
        claimed = CreditGrant.objects.filter(pk=grant.pk, expired_amount=grant.expired_amount).update(
            expired_amount=expired + amount, expired_at=now)
        if claimed != 1:
            continue
        entry = ledger_post_all([Posting(
            kind=JournalEntry.Kind.CREDIT_EXPIRY, reference=f"credit-expiry:{grant.pk}",
            memo=f"{grant.expires_at:%Y-%m-%d}",
            lines=[(book.member(organisation_id, Account.Kind.CREDITS), -amount),
                   (book.house(Account.Kind.INCENTIVE_FUND), amount)])])[0]
        if grant.expiry_entry_id is None:
            CreditGrant.objects.filter(pk=grant.pk).update(expiry_entry=entry)
        audit_record(actor=None, action="incentives.credit_expiry", organisation=None, obj=grant,
                     before={"expired_amount": str(expired)}, after={"expired_amount": str(expired + amount),
                                                                      "entry": entry.pk})
        available -= amount
        posted += 1
    return posted
