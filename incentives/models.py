"""The state's start financing of the incentive fund (issue 12; docs/incentives.md)."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
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
