"""Reads of the start-up incentives: the start financing, programmes,
eligibility and credits; what the public sees (issue 12)."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import DecimalField, F, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Membership, Organisation
from accounts.selectors import kyc_status_of
from clearing.models import CREDIT_KINDS, Account, JournalEntry, JournalLine
from clearing.selectors import house_balances
from incentives.models import CreditGrant, Programme, StartFinancing
from incentives.rules import (
    HAS_BOUGHT_BEFORE,
    NO_FOUNDING_DATE,
    NOT_A_MEMBER,
    NOT_AN_SME,
    STATE_NOT_COVERED,
    TOO_OLD,
    EligibilityRules,
    GrantState,
    OrganisationFacts,
    allocate_spent,
    eligibility,
    payoff_month,
)

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Repayment:
    month: date
    amount: Decimal


@dataclass(frozen=True)
class FinancingSummary:
    financed: Decimal
    repaid: Decimal
    owed: Decimal
    repayment_share: Decimal | None
    fund_balance: Decimal
    repayments: list[Repayment]
    expected_payoff: date | None


def financing_summary() -> FinancingSummary:
    """Financed, repaid and owed from the ledger lines of the
    ``start_financing`` account; repayments per month (newest first); the
    payoff month projected by ``incentives.rules.payoff_month``."""
    lines = JournalLine.objects.filter(account__organisation__isnull=True,
                                       account__kind=Account.Kind.START_FINANCING)
    financed = -(lines.filter(entry__kind=JournalEntry.Kind.START_FINANCING)
                 .aggregate(total=Sum("amount"))["total"] or ZERO)
    rows = (lines.filter(entry__kind=JournalEntry.Kind.FINANCING_REPAYMENT)
            .values_list("entry__reference", "amount"))
    repayments = sorted((Repayment(month=date.fromisoformat(reference.rsplit(":", 1)[1] + "-01"), amount=amount)
                         for reference, amount in rows), key=lambda r: r.month, reverse=True)
    repaid = sum((r.amount for r in repayments), ZERO)
    owed = financed - repaid
    latest = StartFinancing.objects.order_by("-booked_at", "-id").values_list("repayment_share", flat=True).first()
    fund = house_balances([Account.Kind.INCENTIVE_FUND])[Account.Kind.INCENTIVE_FUND]
    return FinancingSummary(
        financed=financed, repaid=repaid, owed=owed, repayment_share=latest, fund_balance=fund,
        repayments=repayments,
        expected_payoff=payoff_month(owed=owed, repayments=[(r.month, r.amount) for r in repayments])
        if financed else None,
    )


# --- programmes, eligibility, credits (issue 12 parts 2-6) ---------------------------------


def eligibility_rules_of(programme: Programme) -> EligibilityRules:
    return EligibilityRules(max_age_years=programme.max_age_years, sme_only=programme.sme_only,
                            states=frozenset(programme.states or ()),
                            first_time_buyers_only=programme.first_time_buyers_only)


def has_bought_before(organisation: Organisation) -> bool:
    from market.models import Trade

    return Trade.objects.filter(buyer=organisation).exists()


def organisation_facts(organisation: Organisation) -> OrganisationFacts:
    """The facts ``incentives.rules.eligibility`` decides on. A member is an
    organisation of kind member whose KYC review is approved."""
    return OrganisationFacts(
        is_member=organisation.kind == Organisation.Kind.MEMBER and kyc_status_of(organisation) == "approved",
        founding_date=organisation.founding_date, is_sme=organisation.is_sme(), state=organisation.state,
        has_bought_before=has_bought_before(organisation))


def may_apply(membership: Membership | None) -> bool:
    """Who may apply for an organisation, and withdraw its applications: an owner or a trader."""
    return membership is not None and (membership.is_owner or membership.is_trader)


def programme_eligibility(programme: Programme, organisation: Organisation, today: date | None = None) -> list[str]:
    """The reason codes why ``organisation`` may not apply (empty: it may)."""
    return eligibility(organisation_facts(organisation), eligibility_rules_of(programme),
                       today or timezone.localdate())


REASON_TEXTS = {
    NOT_A_MEMBER: _("Your organisation is not an approved member yet (KYC review)."),
    NO_FOUNDING_DATE: _("Your organisation has no founding date on record."),
    TOO_OLD: _("Your organisation was founded too long ago for this programme."),
    NOT_AN_SME: _("The programme is for SMEs only (fewer than 250 staff and at most 50 million EUR turnover)."),
    STATE_NOT_COVERED: _("The programme does not cover the federal state of your organisation's seat."),
    HAS_BOUGHT_BEFORE: _("The programme is for first-time buyers; your organisation has bought before."),
}


def reason_texts(reasons: list[str]) -> list[str]:
    """The reason codes in words, in the active language."""
    return [str(REASON_TEXTS.get(code, code)) for code in reasons]


def granted_by_programme(programme_ids: list[int] | None = None) -> dict[int, Decimal]:
    rows = CreditGrant.objects.order_by().values("programme_id").annotate(total=Sum("amount"))
    if programme_ids is not None:
        rows = rows.filter(programme_id__in=programme_ids)
    return {row["programme_id"]: row["total"] for row in rows}


def programme_granted(programme: Programme) -> Decimal:
    return CreditGrant.objects.filter(programme=programme).aggregate(total=Sum("amount"))["total"] or ZERO


def programme_remaining(programme: Programme) -> Decimal:
    """What is left to grant: the budget less the grants (0 unless open)."""
    if programme.status != Programme.Status.OPEN:
        return ZERO
    return programme.budget - programme_granted(programme)


def open_programmes() -> list[Programme]:
    """Open programmes, each with ``remaining`` (budget less grants) set."""
    programmes = list(Programme.objects.filter(status=Programme.Status.OPEN).order_by("ends_on", "id"))
    granted = granted_by_programme([p.pk for p in programmes])
    for programme in programmes:
        programme.remaining = programme.budget - granted.get(programme.pk, ZERO)  # type: ignore[attr-defined]
    return programmes


def own_purchases(organisation: Organisation) -> Decimal:
    """The value of what the organisation has bought on the spot market
    (price x quantity x hours of its trades as buyer; futures are positions,
    not purchases) less the credits it has spent: what it bought with its
    own money. Fees are not counted."""
    from market.models import Segment, Trade

    bought = (Trade.objects.filter(buyer=organisation).exclude(instrument__segment=Segment.FUTURES)
              .aggregate(total=Sum(F("price") * F("quantity") * F("instrument__hours"),
                                   output_field=DecimalField(max_digits=24, decimal_places=2)))["total"] or ZERO)
    return max(bought - credits_spent(organisation), ZERO)


def credit_balances(organisation: Organisation | int) -> tuple[Decimal, Decimal]:
    """(credits, credits reserved) of the organisation."""
    org_id = organisation if isinstance(organisation, int) else organisation.pk
    balances = dict(Account.objects.filter(organisation_id=org_id, kind__in=CREDIT_KINDS)
                    .values_list("kind", "balance"))
    return (balances.get(Account.Kind.CREDITS, ZERO), balances.get(Account.Kind.CREDITS_RESERVED, ZERO))


def credits_spent(organisation: Organisation | int) -> Decimal:
    """Spent so far = granted - expired - (credits + credits reserved)."""
    org_id = organisation if isinstance(organisation, int) else organisation.pk
    totals = CreditGrant.objects.filter(organisation_id=org_id).aggregate(
        granted=Sum("amount"), expired=Sum("expired_amount"))
    available, reserved = credit_balances(org_id)
    return (totals["granted"] or ZERO) - (totals["expired"] or ZERO) - available - reserved


@dataclass(frozen=True)
class GrantView:
    grant: CreditGrant
    used: Decimal
    expired: Decimal
    left: Decimal  # neither used nor expired


@dataclass(frozen=True)
class CreditsSummary:
    available: Decimal
    reserved: Decimal
    grants: list[GrantView]


def credits_summary(organisation: Organisation) -> CreditsSummary:
    """The organisation's grants, earliest expiry first, with what was used
    of each (spending allocated FIFO, as ``credits_expire`` does)."""
    grants = list(CreditGrant.objects.filter(organisation=organisation).select_related("programme")
                  .order_by("expires_at", "id"))
    available, reserved = credit_balances(organisation)
    used = allocate_spent([GrantState(g.pk, g.amount, g.expired_amount or ZERO) for g in grants],
                          credits_spent(organisation))
    views = []
    for grant in grants:
        expired = grant.expired_amount or ZERO
        views.append(GrantView(grant=grant, used=used[grant.pk], expired=expired,
                               left=grant.amount - used[grant.pk] - expired))
    return CreditsSummary(available=available, reserved=reserved, grants=views)


@dataclass(frozen=True)
class ProgrammeReport:
    granted: Decimal
    used: Decimal
    expired: Decimal
    remaining: Decimal
    organisations: int


def programme_reports(programmes: list[Programme]) -> dict[int, ProgrammeReport]:
    """Per programme: granted, used (FIFO per organisation), expired and
    returned, remaining budget, number of organisations granted."""
    ids = [p.pk for p in programmes]
    grants = list(CreditGrant.objects.filter(programme_id__in=ids).order_by("expires_at", "id"))
    org_ids = {g.organisation_id for g in grants}
    used: dict[int, Decimal] = {}
    for org_id in org_ids:
        own = list(CreditGrant.objects.filter(organisation_id=org_id).order_by("expires_at", "id"))
        used.update(allocate_spent([GrantState(g.pk, g.amount, g.expired_amount or ZERO) for g in own],
                                   credits_spent(org_id)))
    reports = {}
    for programme in programmes:
        mine = [g for g in grants if g.programme_id == programme.pk]
        granted = sum((g.amount for g in mine), ZERO)
        reports[programme.pk] = ProgrammeReport(
            granted=granted, used=sum((used.get(g.pk, ZERO) for g in mine), ZERO),
            expired=sum((g.expired_amount or ZERO for g in mine), ZERO),
            remaining=programme.budget - granted if programme.status == Programme.Status.OPEN else ZERO,
            organisations=len({g.organisation_id for g in mine}))
    return reports


@dataclass(frozen=True)
class IncentivesSummary:
    startups_supported: int
    credits_granted: Decimal
    credits_used: Decimal
    credits_expired: Decimal
    programme_budgets_open: Decimal
    fund_balance: Decimal


def incentives_summary() -> IncentivesSummary:
    """The public aggregate: anonymous sums, no member named."""
    totals = CreditGrant.objects.aggregate(granted=Sum("amount"), expired=Sum("expired_amount"))
    granted, expired = totals["granted"] or ZERO, totals["expired"] or ZERO
    held = (Account.objects.filter(organisation__isnull=False, kind__in=CREDIT_KINDS)
            .aggregate(total=Sum("balance"))["total"] or ZERO)
    house = house_balances([Account.Kind.INCENTIVE_FUND, Account.Kind.PROGRAMME_BUDGETS])
    return IncentivesSummary(
        startups_supported=CreditGrant.objects.values("organisation_id").distinct().count(),
        credits_granted=granted, credits_used=granted - expired - held, credits_expired=expired,
        programme_budgets_open=house[Account.Kind.PROGRAMME_BUDGETS],
        fund_balance=house[Account.Kind.INCENTIVE_FUND])
