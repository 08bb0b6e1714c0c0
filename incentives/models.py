"""The state's start financing of the incentive fund (issue 12; docs/incentives.md)."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from clearing.models import ImmutableModel, ImmutableQuerySet, JournalEntry


class StartFinancing(ImmutableModel):
    """One booking of the state's start financing into the incentive fund.

    Written once by ``incentives.services.start_financing_book`` with its
    journal entry; never changed. The repayment share of the newest booking
    applies to every month swept after it."""

    amount = models.DecimalField(_("amount (EUR)"), max_digits=18, decimal_places=2)
    repayment_share = models.DecimalField(
        _("repayment share"), max_digits=5, decimal_places=4, default=Decimal("0.5000"),
        validators=[MinValueValidator(Decimal("0.0001")), MaxValueValidator(Decimal("1"))],
        help_text=_("The share of each month's net fee revenue that repays the financing, e.g. 0.5 for half of it."),
    )
    reason = models.CharField(_("reason"), max_length=255)
    booked_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("booked by"), on_delete=models.PROTECT,
                                  related_name="+")
    booked_at = models.DateTimeField(_("booked at"), default=timezone.now)
    entry = models.OneToOneField(JournalEntry, verbose_name=_("journal entry"), on_delete=models.PROTECT,
                                 related_name="start_financing")

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        verbose_name = _("start financing")
        verbose_name_plural = _("start financing")
        ordering = ("-booked_at", "-id")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="incentives_startfinancing_amount_positive"),
            models.CheckConstraint(condition=Q(repayment_share__gt=0, repayment_share__lte=1),
                                   name="incentives_startfinancing_share_in_range"),
        ]

    def __str__(self) -> str:
        return f"{self.booked_at:%Y-%m-%d}: {self.amount} EUR"


# --- Programmes, applications and credits (issue 12 parts 2-6) --------------------------------

APPLICATION_PLAN_MAX_LENGTH = 2000
REASON_MAX_LENGTH = 255


class Programme(models.Model):
    """A start-up incentive programme: a budget out of the incentive fund,
    eligibility rules, and how much one organisation may be granted.

    Opening moves the budget from the ``incentive_fund`` to the guarded
    ``programme_budgets`` house account (one entry, ``opened_entry``);
    closing returns what was not granted (``closed_entry``). What is left
    to grant is ``budget - Σ grants``; approvals lock this row to keep it
    from going below zero (docs/incentives.md, "Approvals")."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        OPEN = "open", _("open")
        CLOSED = "closed", _("closed")

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True,
                                   help_text=_("Shown to members on the incentives page."))
    budget = models.DecimalField(_("budget (EUR)"), max_digits=18, decimal_places=2)
    starts_on = models.DateField(_("applications from"))
    ends_on = models.DateField(_("applications until"))
    max_age_years = models.PositiveSmallIntegerField(
        _("maximum age of the start-up (years)"), null=True, blank=True,
        help_text=_("Founded at most this many years ago; empty: any age."))
    sme_only = models.BooleanField(_("SMEs only"), default=False)
    states = models.JSONField(_("federal states"), default=list, blank=True,
                              help_text=_("Codes such as DE-BE; empty: every state."))
    first_time_buyers_only = models.BooleanField(_("first-time buyers only"), default=False)
    max_grant = models.DecimalField(_("maximum grant per organisation (EUR)"), max_digits=18, decimal_places=2)
    matching_ratio = models.DecimalField(
        _("matching ratio"), max_digits=6, decimal_places=2, null=True, blank=True,
        help_text=_("e.g. 1.00: at most 1 EUR of credit per 1 EUR the organisation has bought with its own "
                    "money; empty: no matching rule."))
    credit_validity_months = models.PositiveSmallIntegerField(_("credit validity (months)"), default=12)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("opened by"), on_delete=models.PROTECT,
                                  null=True, blank=True, related_name="+")
    opened_at = models.DateTimeField(_("opened at"), null=True, blank=True)
    opened_entry = models.OneToOneField(JournalEntry, verbose_name=_("opening entry"), on_delete=models.PROTECT,
                                        null=True, blank=True, related_name="programme_opened")
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("closed by"), on_delete=models.PROTECT,
                                  null=True, blank=True, related_name="+")
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    closed_entry = models.OneToOneField(JournalEntry, verbose_name=_("closing entry"), on_delete=models.PROTECT,
                                        null=True, blank=True, related_name="programme_closed")

    class Meta:
        verbose_name = _("incentive programme")
        verbose_name_plural = _("incentive programmes")
        ordering = ("-starts_on", "-id")
        constraints = [
            models.CheckConstraint(condition=Q(budget__gt=0), name="incentives_programme_budget_positive"),
            models.CheckConstraint(condition=Q(max_grant__gt=0), name="incentives_programme_max_grant_positive"),
            models.CheckConstraint(condition=Q(ends_on__gte=F("starts_on")),
                                   name="incentives_programme_period_ordered"),
            models.CheckConstraint(condition=Q(matching_ratio__isnull=True) | Q(matching_ratio__gt=0),
                                   name="incentives_programme_matching_ratio_positive"),
            models.CheckConstraint(condition=Q(credit_validity_months__gte=1),
                                   name="incentives_programme_validity_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Application(models.Model):
    """A member's application for credits under a programme, decided by
    operators (four eyes above ``INCENTIVE_FOUR_EYES_THRESHOLD``)."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", _("submitted")
        APPROVED = "approved", _("approved")
        REJECTED = "rejected", _("rejected")
        WITHDRAWN = "withdrawn", _("withdrawn")

    programme = models.ForeignKey(Programme, verbose_name=_("programme"), on_delete=models.PROTECT,
                                  related_name="applications")
    organisation = models.ForeignKey("accounts.Organisation", verbose_name=_("organisation"),
                                     on_delete=models.PROTECT, related_name="incentive_applications")
    applicant = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("applicant"), on_delete=models.PROTECT,
                                  related_name="+")
    plan = models.TextField(_("plan"), max_length=APPLICATION_PLAN_MAX_LENGTH,
                            help_text=_("What the organisation will compute with the credits (a few sentences)."))
    requested_amount = models.DecimalField(_("requested amount (EUR)"), max_digits=18, decimal_places=2)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.SUBMITTED)
    submitted_at = models.DateTimeField(_("submitted at"), default=timezone.now)
    # Four eyes: the first of two approvals (only above the threshold).
    first_approver = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("first approver"),
                                       on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    first_approved_at = models.DateTimeField(_("first approved at"), null=True, blank=True)
    first_approved_amount = models.DecimalField(_("amount of the first approval (EUR)"), max_digits=18,
                                                decimal_places=2, null=True, blank=True)
    # Who decided: the approver (the second one under four eyes), the
    # operator who rejected, or the member who withdrew.
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("decided by"), on_delete=models.PROTECT,
                                   null=True, blank=True, related_name="+")
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decided_amount = models.DecimalField(_("approved amount (EUR)"), max_digits=18, decimal_places=2, null=True,
                                         blank=True)
    reason = models.CharField(_("reason"), max_length=REASON_MAX_LENGTH, blank=True)

    class Meta:
        verbose_name = _("incentive application")
        verbose_name_plural = _("incentive applications")
        ordering = ("-submitted_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=("programme", "organisation"), condition=Q(status="submitted"),
                                    name="incentives_one_open_application_per_programme"),
            models.CheckConstraint(condition=Q(requested_amount__gt=0),
                                   name="incentives_application_amount_positive"),
            models.CheckConstraint(condition=~Q(status="approved") | Q(decided_amount__gt=0),
                                   name="incentives_application_approved_has_amount"),
        ]

    def __str__(self) -> str:
        return f"{self.programme}: {self.organisation}"

    @property
    def awaits_second_approval(self) -> bool:
        return self.status == self.Status.SUBMITTED and self.first_approver_id is not None


class CreditGrant(models.Model):
    """Credits granted on an approved application, posted from the
    programme budgets to the member's ``credits`` account. Unused credit
    returns to the fund after ``expires_at`` (``credits_expire``);
    ``expired_amount`` is what has returned so far."""

    organisation = models.ForeignKey("accounts.Organisation", verbose_name=_("organisation"),
                                     on_delete=models.PROTECT, related_name="credit_grants")
    programme = models.ForeignKey(Programme, verbose_name=_("programme"), on_delete=models.PROTECT,
                                  related_name="grants")
    application = models.OneToOneField(Application, verbose_name=_("application"), on_delete=models.PROTECT,
                                       related_name="grant")
    amount = models.DecimalField(_("amount (EUR)"), max_digits=18, decimal_places=2)
    granted_at = models.DateTimeField(_("granted at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    entry = models.OneToOneField(JournalEntry, verbose_name=_("journal entry"), on_delete=models.PROTECT,
                                 related_name="credit_grant")
    expired_amount = models.DecimalField(_("expired and returned (EUR)"), max_digits=18, decimal_places=2,
                                         null=True, blank=True)
    expired_at = models.DateTimeField(_("expiry booked at"), null=True, blank=True)
    expiry_entry = models.OneToOneField(JournalEntry, verbose_name=_("expiry entry"), on_delete=models.PROTECT,
                                        null=True, blank=True, related_name="credit_expiry")

    class Meta:
        verbose_name = _("credit grant")
        verbose_name_plural = _("credit grants")
        ordering = ("expires_at", "id")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="incentives_creditgrant_amount_positive"),
            models.CheckConstraint(
                condition=Q(expired_amount__isnull=True) | Q(expired_amount__gte=0, expired_amount__lte=F("amount")),
                name="incentives_creditgrant_expired_within_amount"),
        ]

    def __str__(self) -> str:
        return f"{self.organisation}: {self.amount} EUR ({self.programme})"
