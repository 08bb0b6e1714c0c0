"""The clearing house's books: accounts, an append-only double-entry journal,
and the bank deposits that bring cash in.

Sign convention (docs/architecture.md, "Ledger core"): every journal line is a
signed amount, the lines of an entry sum to zero, and a line's amount is added
to its account's balance. Balances are seen from the clearing house's books,
credit-positive: what the house owes a member, and its own funds, are positive;
the ``bank`` account, the money held at the clearing bank, is the asset side
and so carries minus that money. The sum over all accounts is always zero.

Only ``clearing.services.ledger_post`` writes journal rows and changes a
balance. Journal rows are never changed or deleted (a correction is a new
entry): the models refuse it, and on PostgreSQL so do triggers
(migration 0002).
"""

import datetime
from decimal import Decimal
from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation

BANK_REFERENCE_MAX_LENGTH = 100


class ImmutableError(Exception):
    """Raised when code tries to change or delete a row of the books."""


class ImmutableQuerySet(models.QuerySet[Any]):
    """Journal rows are written once: bulk updates and deletes are refused too."""

    def update(self, **kwargs: Any) -> NoReturn:
        raise ImmutableError(f"{self.model.__name__} rows are immutable; post a correcting entry instead.")

    def delete(self) -> NoReturn:
        raise ImmutableError(f"{self.model.__name__} rows are immutable; post a correcting entry instead.")


class ImmutableModel(models.Model):
    """Insert once; ``save()`` on an existing row and ``delete()`` raise."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ImmutableError(f"{type(self).__name__} rows are immutable; post a correcting entry instead.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ImmutableError(f"{type(self).__name__} rows are immutable; post a correcting entry instead.")


class Account(models.Model):
    class Kind(models.TextChoices):
        # A member organisation's accounts.
        CASH_AVAILABLE = "cash_available", _("cash available")
        CASH_RESERVED = "cash_reserved", _("cash reserved")
        SETTLEMENT_PENDING = "settlement_pending", _("settlement pending")
        MARGIN = "margin", _("margin")
        # Opened on first use: money a member asked to withdraw, until an
        # operator pays it out or returns it (issue 4, "Withdrawals").
        WITHDRAWAL_PENDING = "withdrawal_pending", _("withdrawal pending")
        # Opened on first use, never guarded: what a member owes the clearing
        # house after a refund larger than its cash, carried negative until
        # repaid (issue 7, "Settlement policy and payout accounts").
        CCP_CLAIM = "ccp_claim", _("claim of the clearing house")
        # Opened on first use, guarded: the fees (with VAT) of the member's
        # current, not yet charged months, held at each trade so that the
        # monthly charge is exactly what was held (issue 7, "Fees as published").
        FEE_RESERVE = "fee_reserve", _("fees (held)")
        # Opened on first use, guarded: the member's contribution to the
        # futures default fund, held by the clearing house (issue 10).
        DEFAULT_FUND = "default_fund", _("default fund contribution")
        # Opened on first use, guarded: credits granted by a start-up
        # incentive programme (issue 12), spendable only on purchases and their
        # fees, never withdrawable; ``credits_reserved`` holds the part that
        # buy orders reserved (docs/incentives.md, "Credits").
        CREDITS = "credits", _("incentive credits")
        CREDITS_RESERVED = "credits_reserved", _("incentive credits reserved")
        # The clearing house's own accounts (no organisation).
        BANK = "bank", _("bank")
        CCP = "ccp", _("central counterparty")
        FEE_REVENUE = "fee_revenue", _("fee revenue")
        INCENTIVE_FUND = "incentive_fund", _("start-up incentive fund")
        RND_FUND = "rnd_fund", _("R&D fund")
        # Output VAT on the fees charged, owed to the tax office; not guarded.
        VAT_PAYABLE = "vat_payable", _("VAT payable")
        # What the exchange owes the state for its start financing (issue 12),
        # carried negative like a loan until repaid; not guarded.
        START_FINANCING = "start_financing", _("start financing (owed to the state)")
        # Guarded: the budgets of open incentive programmes, moved out of the
        # incentive fund when a programme opens and granted from here as credits.
        PROGRAMME_BUDGETS = "programme_budgets", _("incentive programme budgets")

    organisation = models.ForeignKey(
        "accounts.Organisation",
        verbose_name=_("organisation"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="clearing_accounts",
        help_text=_("Empty for the clearing house's own accounts."),
    )
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    # A running total of the account's journal lines, kept so that the
    # pre-trade check is one conditional UPDATE. Changed only by ledger_post,
    # with F() arithmetic in the transaction that writes the lines;
    # clearing.selectors.unreconciled_accounts recomputes it from the lines.
    balance = models.DecimalField(_("balance"), max_digits=18, decimal_places=2, default=0, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ("organisation_id", "kind")
        constraints = [
            models.UniqueConstraint(fields=("organisation", "kind"), name="clearing_account_one_per_member_kind"),
            # NULLs are distinct in a unique index: the house accounts need their own.
            models.UniqueConstraint(
                fields=("kind",), condition=Q(organisation__isnull=True), name="clearing_account_one_per_house_kind"
            ),
            models.CheckConstraint(
                condition=Q(organisation__isnull=False, kind__in=("cash_available", "cash_reserved",
                                                                  "settlement_pending", "margin",
                                                                  "withdrawal_pending", "ccp_claim",
                                                                  "fee_reserve", "default_fund", "credits",
                                                                  "credits_reserved"))
                | Q(organisation__isnull=True, kind__in=("bank", "ccp", "fee_revenue", "incentive_fund", "rnd_fund",
                                                         "vat_payable", "start_financing", "programme_budgets")),
                name="clearing_account_kind_matches_owner",
            ),
            # The backstop behind ledger_post's conditional update: a member's
            # money and the funds can never be negative, whatever code runs.
            models.CheckConstraint(
                condition=Q(balance__gte=0)
                | ~Q(kind__in=("cash_available", "cash_reserved", "settlement_pending", "margin",
                               "withdrawal_pending", "fee_reserve", "incentive_fund", "rnd_fund",
                               "default_fund", "credits", "credits_reserved", "programme_budgets")),
                name="clearing_account_guarded_not_negative",
            ),
        ]

    def __str__(self) -> str:
        if self.organisation_id is None:
            return str(_("%(kind)s (clearing house)") % {"kind": self.get_kind_display()})
        return f"{self.get_kind_display()} – {self.organisation}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # An account is created empty and then only ever changed by
        # ledger_post's UPDATE; saving a loaded object could write back a
        # stale balance.
        if not self._state.adding:
            raise ImmutableError("Accounts are changed only by clearing.services.ledger_post.")
        if self.balance:
            raise ImmutableError("An account starts at zero; money enters through a journal entry.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ImmutableError("Accounts are never deleted.")


MEMBER_KINDS: tuple[str, ...] = (
    Account.Kind.CASH_AVAILABLE,
    Account.Kind.CASH_RESERVED,
    Account.Kind.SETTLEMENT_PENDING,
    Account.Kind.MARGIN,
)
# Member accounts opened only when first used, outside the four every member
# has (and outside GET /api/v1/account/): see "Withdrawals" in the docs. The
# statement lists each one the organisation has.
MEMBER_EXTRA_KINDS: tuple[str, ...] = (Account.Kind.WITHDRAWAL_PENDING, Account.Kind.CCP_CLAIM,
                                       Account.Kind.FEE_RESERVE, Account.Kind.DEFAULT_FUND,
                                       Account.Kind.CREDITS, Account.Kind.CREDITS_RESERVED)
HOUSE_KINDS: tuple[str, ...] = (
    Account.Kind.BANK,
    Account.Kind.CCP,
    Account.Kind.FEE_REVENUE,
    Account.Kind.INCENTIVE_FUND,
    Account.Kind.RND_FUND,
    Account.Kind.VAT_PAYABLE,
    Account.Kind.START_FINANCING,
    Account.Kind.PROGRAMME_BUDGETS,
)
# Accounts whose balance may never go below zero (mirrored by the check
# constraint above): a member's money in each of its states, and the funds,
# which cannot grant more than they hold. The bank, the CCP and fee revenue
# are not guarded: the CCP's balance swings both ways with open trades. Nor is
# a member's ``ccp_claim``: it is negative exactly while the member owes.
GUARDED_KINDS: frozenset[str] = frozenset(
    (*MEMBER_KINDS, Account.Kind.WITHDRAWAL_PENDING, Account.Kind.FEE_RESERVE, Account.Kind.INCENTIVE_FUND,
     Account.Kind.RND_FUND, Account.Kind.DEFAULT_FUND, Account.Kind.CREDITS, Account.Kind.CREDITS_RESERVED,
     Account.Kind.PROGRAMME_BUDGETS)
)
# A member's incentive credits: not money it can withdraw (issue 12).
CREDIT_KINDS: tuple[str, ...] = (Account.Kind.CREDITS, Account.Kind.CREDITS_RESERVED)


class JournalEntry(ImmutableModel):
    class Kind(models.TextChoices):
        DEPOSIT = "deposit", _("deposit")
        WITHDRAWAL = "withdrawal", _("withdrawal")
        RESERVE = "reserve", _("reservation")
        RELEASE = "release", _("release")
        TRADE = "trade", _("trade")
        FEE = "fee", _("fee")
        SETTLEMENT = "settlement", _("settlement")
        REFUND = "refund", _("refund")
        MARGIN = "margin", _("margin")
        VARIATION_MARGIN = "variation_margin", _("variation margin")
        INCENTIVE = "incentive", _("incentive")
        CORRECTION = "correction", _("correction")
        # An operator collects what a member owes the clearing house (ccp_claim) from its cash.
        CLAIM = "claim", _("claim repayment")
        # The state's start financing booked into the incentive fund, and its
        # monthly repayments from net fee revenue (issue 12, docs/incentives.md).
        START_FINANCING = "start_financing", _("start financing")
        FINANCING_REPAYMENT = "financing_repayment", _("start financing repayment")
        # Issue 12: a programme's budget moved out of (or back into) the
        # incentive fund; credits granted to a member; unused credits that
        # expired and returned to the fund.
        PROGRAMME_BUDGET = "programme_budget", _("programme budget")
        CREDIT_GRANT = "credit_grant", _("credit grant")
        CREDIT_EXPIRY = "credit_expiry", _("credit expiry")

    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    reference = models.CharField(
        _("reference"), max_length=100, blank=True, db_index=True,
        help_text=_('What the entry belongs to, e.g. "order:123".'),
    )
    memo = models.CharField(_("memo"), max_length=255, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("The person who caused the entry; empty for the system."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        verbose_name = _("journal entry")
        verbose_name_plural = _("journal entries")
        ordering = ("-id",)
        constraints = [
            # The monthly fee charge of a member ("fees:<org>:<YYYY-MM>") and
            # the month's fund sweep ("fees-sweep:<YYYY-MM>") are posted once.
            models.UniqueConstraint(fields=("reference",), condition=Q(kind="fee"),
                                    name="clearing_journalentry_one_fee_entry_per_reference"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()} {self.reference}".strip()


class JournalLine(ImmutableModel):
    entry = models.ForeignKey(JournalEntry, verbose_name=_("journal entry"), on_delete=models.PROTECT,
                              related_name="lines")
    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.PROTECT, related_name="lines")
    amount = models.DecimalField(_("amount"), max_digits=18, decimal_places=2)

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        verbose_name = _("journal line")
        verbose_name_plural = _("journal lines")
        ordering = ("id",)
        indexes = [models.Index(fields=("account", "id"), name="clearing_line_account_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="clearing_journalline_amount_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.account}: {self.amount}"


class CashDeposit(ImmutableModel):
    """Money that arrived at the clearing bank for a member, booked by an operator."""

    organisation = models.ForeignKey(
        "accounts.Organisation", verbose_name=_("organisation"), on_delete=models.PROTECT,
        related_name="cash_deposits",
    )
    amount = models.DecimalField(_("amount (EUR)"), max_digits=18, decimal_places=2)
    bank_reference = models.CharField(
        _("bank reference"), max_length=BANK_REFERENCE_MAX_LENGTH, unique=True,
        help_text=_("The reference of the bank transfer; each transfer is booked once."),
    )
    booked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("booked by"), on_delete=models.PROTECT, related_name="+",
    )
    booked_at = models.DateTimeField(_("booked at"), default=timezone.now)
    entry = models.OneToOneField(
        JournalEntry, verbose_name=_("journal entry"), on_delete=models.PROTECT, related_name="cash_deposit",
    )

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        verbose_name = _("cash deposit")
        verbose_name_plural = _("cash deposits")
        ordering = ("-booked_at", "-id")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="clearing_cashdeposit_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.bank_reference}: {self.amount} EUR"


# --- Reconciliation, statements and invoices (issue 4; docs/architecture.md) -------------


class ReconciliationRun(models.Model):
    """One scheduled run of the invariant checks (clearing.reconcile)."""

    started_at = models.DateTimeField(_("started at"), default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    ok = models.BooleanField(_("all checks passed"), default=False)
    # The names of the checks that ran, and [{"check": name, "detail": text}] of those that broke.
    checks = models.JSONField(_("checks"), default=list, blank=True)
    breaches = models.JSONField(_("breaches"), default=list, blank=True)
    # None: no alert was due; True: the operators were mailed; False: the
    # mail failed, and the next run alerts again.
    alert_sent = models.BooleanField(_("alert sent"), null=True, blank=True)

    class Meta:
        verbose_name = _("reconciliation run")
        # The admin page of the runs is the reconciliation page itself.
        verbose_name_plural = _("reconciliation")
        ordering = ("-started_at", "-id")

    def __str__(self) -> str:
        return f"#{self.pk} {self.started_at:%Y-%m-%d %H:%M} {'ok' if self.ok else 'broken'}"

    @property
    def broken_checks(self) -> list[str]:
        return sorted({breach["check"] for breach in self.breaches})


class InvoiceSequence(models.Model):
    """The last invoice number given out in a calendar year (Europe/Berlin).

    Advanced only by ``clearing.invoicing`` with one conditional UPDATE in
    the transaction that inserts the invoice, so a rollback returns the number.
    """

    year = models.PositiveSmallIntegerField(_("year"), unique=True)
    last_number = models.PositiveIntegerField(_("last number"), default=0)

    class Meta:
        verbose_name = _("invoice number sequence")
        verbose_name_plural = _("invoice number sequences")
        ordering = ("year",)

    def __str__(self) -> str:
        return f"{self.year}: {self.last_number}"


class Invoice(ImmutableModel):
    """A fee invoice. Issued once by ``clearing.invoicing.invoice_issue``, never changed."""

    number = models.CharField(_("invoice number"), max_length=20, unique=True)
    year = models.PositiveSmallIntegerField(_("year"))
    sequence = models.PositiveIntegerField(_("sequence number"))
    organisation = models.ForeignKey(
        "accounts.Organisation", verbose_name=_("organisation"), on_delete=models.PROTECT, related_name="invoices",
    )
    issued_at = models.DateTimeField(_("issued at"), default=timezone.now)
    reference = models.CharField(
        _("reference"), max_length=100, unique=True,
        help_text=_('What is invoiced, e.g. "delivery:123:buyer"; one invoice per reference.'),
    )
    # The recipient as it was at issue: an organisation may be renamed or move.
    recipient = models.JSONField(_("recipient"), default=dict)
    net_total = models.DecimalField(_("net total (EUR)"), max_digits=18, decimal_places=2)
    vat_rate = models.DecimalField(_("VAT rate (%)"), max_digits=5, decimal_places=2)
    vat_amount = models.DecimalField(_("VAT (EUR)"), max_digits=18, decimal_places=2)
    gross_total = models.DecimalField(_("gross total (EUR)"), max_digits=18, decimal_places=2)
    vat_note = models.CharField(_("VAT note"), max_length=255, blank=True)
    entry = models.ForeignKey(
        JournalEntry, verbose_name=_("journal entry"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="invoices", help_text=_("The entry that charged what is invoiced, if one."),
    )

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ("-year", "-sequence")
        constraints = [
            models.UniqueConstraint(fields=("year", "sequence"), name="clearing_invoice_one_number_per_year"),
            models.CheckConstraint(condition=Q(sequence__gt=0), name="clearing_invoice_sequence_positive"),
            models.CheckConstraint(condition=Q(gross_total=F("net_total") + F("vat_amount")),
                                   name="clearing_invoice_gross_is_net_plus_vat"),
        ]

    def __str__(self) -> str:
        return self.number


class InvoiceLine(ImmutableModel):
    invoice = models.ForeignKey(Invoice, verbose_name=_("invoice"), on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveSmallIntegerField(_("position"))
    description = models.CharField(_("description"), max_length=255)
    quantity = models.DecimalField(_("quantity"), max_digits=18, decimal_places=3)
    unit = models.CharField(_("unit"), max_length=16)
    unit_price = models.DecimalField(_("unit price (EUR)"), max_digits=18, decimal_places=6, null=True, blank=True)
    amount = models.DecimalField(_("net amount (EUR)"), max_digits=18, decimal_places=2)

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        verbose_name = _("invoice line")
        verbose_name_plural = _("invoice lines")
        ordering = ("invoice", "position")
        constraints = [
            models.UniqueConstraint(fields=("invoice", "position"), name="clearing_invoiceline_one_per_position"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="clearing_invoiceline_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.invoice_id}/{self.position}: {self.amount}"

    @property
    def unit_price_shown(self) -> Decimal | None:
        """The unit price without trailing zeros, at least to the cent: 0.015, 1.50."""
        if self.unit_price is None:
            return None
        trimmed = self.unit_price.normalize()
        exponent = trimmed.as_tuple().exponent
        return trimmed if isinstance(exponent, int) and exponent < -2 else self.unit_price.quantize(Decimal("0.01"))


class StatementOrganisation(Organisation):
    """The operators' admin entry to any organisation's statements (no table of its own)."""

    class Meta:
        proxy = True
        verbose_name = _("statement")
        verbose_name_plural = _("statements")


# --- Delivery tickets (issue 4, docs/architecture.md "Delivery and settlement") -----------------

# market-rules §3/§4: the buyer confirms or disputes until 24 h after delivery
# end; an undisputed ticket is paid out automatically when this has passed.
DELIVERY_CONFIRMATION_WINDOW = datetime.timedelta(hours=24)


class DeliveryTicket(models.Model):
    """One slice of one spot trade to deliver: GPUs of one seller site (or,
    for resale, passed on from the seller's own inbound ticket) to one buyer.

    The tickets of a trade add up to its quantity, value and fees exactly;
    each ticket settles once (``settled_at`` and ``settlement_entry``).
    """

    class Status(models.TextChoices):
        AWAITING_ACCESS = "awaiting_access", _("awaiting access details")
        ACCESS_POSTED = "access_posted", _("access details posted")
        # No access details at delivery start (market-rules §4): never paid
        # automatically; refunded at the window's end unless the buyer
        # confirms or disputes or an operator holds it.
        NOT_PROVIDED = "not_provided", _("access details not provided")
        CONFIRMED = "confirmed", _("confirmed")
        DISPUTED = "disputed", _("disputed")
        RESOLVED = "resolved", _("dispute resolved")
        SETTLED = "settled", _("settled")

    trade = models.ForeignKey("market.Trade", verbose_name=_("trade"), on_delete=models.PROTECT,
                              related_name="delivery_tickets")
    seller = models.ForeignKey(Organisation, verbose_name=_("seller"), on_delete=models.PROTECT,
                               related_name="delivery_tickets_sold")
    seller_site = models.ForeignKey("market.Site", verbose_name=_("seller site"), on_delete=models.PROTECT,
                                    null=True, blank=True, related_name="delivery_tickets",
                                    help_text=_("Empty when the GPUs are resold capacity."))
    source_ticket = models.ForeignKey("self", verbose_name=_("resold from ticket"), on_delete=models.PROTECT,
                                      null=True, blank=True, related_name="resold_tickets")
    buyer = models.ForeignKey(Organisation, verbose_name=_("buyer"), on_delete=models.PROTECT,
                              related_name="delivery_tickets_bought")
    gpu_class = models.ForeignKey("market.GpuClass", verbose_name=_("GPU class"), on_delete=models.PROTECT,
                                  related_name="+")
    zone = models.ForeignKey("market.DeliveryZone", verbose_name=_("delivery zone"), on_delete=models.PROTECT,
                             related_name="+")
    delivery_start = models.DateTimeField(_("delivery start"))
    delivery_end = models.DateTimeField(_("delivery end"))
    gpus = models.PositiveIntegerField(_("GPUs"))
    value = models.DecimalField(_("value (EUR)"), max_digits=18, decimal_places=2)
    buyer_fee = models.DecimalField(_("buyer fee (EUR)"), max_digits=18, decimal_places=2)
    seller_fee = models.DecimalField(_("seller fee (EUR)"), max_digits=18, decimal_places=2)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.AWAITING_ACCESS)
    access_endpoint = models.CharField(_("access endpoint"), max_length=500, blank=True)
    access_instructions = models.TextField(_("access instructions"), blank=True)
    access_posted_at = models.DateTimeField(_("access posted at"), null=True, blank=True)
    access_posted_late = models.BooleanField(_("access posted late"), default=False)
    access_posted_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("access posted by"),
                                         on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # Set once, by the conditional UPDATE that flags the ticket, to its
    # delivery start; kept after the ticket moves on (confirmed, settled).
    not_provided_at = models.DateTimeField(_("access not provided at"), null=True, blank=True)
    held_at = models.DateTimeField(_("held at"), null=True, blank=True)
    held_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("held by"), on_delete=models.PROTECT,
                                null=True, blank=True, related_name="+")
    hold_reason = models.TextField(_("hold reason"), blank=True)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    disputed_at = models.DateTimeField(_("disputed at"), null=True, blank=True)
    dispute_reason = models.TextField(_("dispute reason"), blank=True)
    refund_amount = models.DecimalField(_("refund (EUR)"), max_digits=18, decimal_places=2, null=True, blank=True)
    resolution_reason = models.TextField(_("resolution reason"), blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("resolved by"),
                                    on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)
    settlement_entry = models.OneToOneField(JournalEntry, verbose_name=_("settlement entry"),
                                            on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("delivery ticket")
        verbose_name_plural = _("delivery tickets")
        ordering = ("-delivery_start", "-pk")
        indexes = [
            models.Index(fields=("status", "delivery_end"), name="clearing_ticket_status_end"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(gpus__gt=0), name="clearing_ticket_gpus_positive"),
            models.CheckConstraint(condition=Q(delivery_end__gt=F("delivery_start")),
                                   name="clearing_ticket_period_positive"),
            models.CheckConstraint(
                condition=Q(value__gte=0) & Q(buyer_fee__gte=0) & Q(seller_fee__gte=0)
                & Q(seller_fee__lte=F("value")),
                name="clearing_ticket_amounts_valid"),
            models.CheckConstraint(condition=~Q(seller=F("buyer")), name="clearing_ticket_two_parties"),
            models.CheckConstraint(
                condition=Q(refund_amount__isnull=True) | (Q(refund_amount__gte=0) & Q(refund_amount__lte=F("value"))),
                name="clearing_ticket_refund_within_value"),
            # Settled exactly when it has a settlement time (the claim sets
            # both in one UPDATE; the entry follows in the same transaction).
            models.CheckConstraint(
                condition=(Q(status="settled") & Q(settled_at__isnull=False))
                | (~Q(status="settled") & Q(settled_at__isnull=True) & Q(settlement_entry__isnull=True)),
                name="clearing_ticket_settled_has_time"),
            models.CheckConstraint(condition=~(Q(seller_site__isnull=False) & Q(source_ticket__isnull=False)),
                                   name="clearing_ticket_site_or_resale"),
            models.CheckConstraint(condition=~Q(status="not_provided") | Q(not_provided_at__isnull=False),
                                   name="clearing_ticket_not_provided_has_time"),
            models.CheckConstraint(condition=Q(held_at__isnull=True) | Q(not_provided_at__isnull=False),
                                   name="clearing_ticket_hold_only_not_provided"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.gpus} × {self.gpu_class_id} {self.delivery_start:%Y-%m-%d %H:%M}"

    @property
    def confirmation_deadline(self) -> datetime.datetime:
        return self.delivery_end + DELIVERY_CONFIRMATION_WINDOW

    def started(self, now: datetime.datetime | None = None) -> bool:
        """Delivery has started: the buyer may confirm from now on."""
        return (now or timezone.now()) >= self.delivery_start


# --- Fees, funds and withdrawals (issue 4; docs/architecture.md) -------------------------


def _rate_field(verbose_name: Any) -> "models.DecimalField[Decimal, Decimal]":
    return models.DecimalField(verbose_name, max_digits=8, decimal_places=4,
                               help_text=_("EUR per GPU-hour and side."))


def _share_field(verbose_name: Any) -> "models.DecimalField[Decimal, Decimal]":
    return models.DecimalField(verbose_name, max_digits=5, decimal_places=4,
                               help_text=_("Fraction of fee revenue, e.g. 0.2000 for 20 %."))


class FeeScheduleQuerySet(models.QuerySet["FeeSchedule"]):
    def in_effect(self, when: datetime.datetime | None = None) -> "FeeScheduleQuerySet":
        return self.filter(valid_from__lte=when or timezone.now())

    def update(self, **kwargs: Any) -> NoReturn:
        # A bulk update could rewrite a schedule that trades were priced with.
        raise ImmutableError("Fee schedules are changed one at a time, and only before they take effect.")

    def delete(self) -> Any:
        if self.in_effect().exists():
            raise ImmutableError("A fee schedule that is in effect cannot be deleted.")
        _forget_fee_schedule()
        return super().delete()


def _forget_fee_schedule() -> None:
    """This process's copy of the schedule (``clearing.selectors.fee_terms_at``)
    is stale after a change: forget it now and again at commit."""
    from django.db import transaction

    from clearing.selectors import fee_schedule_forget

    fee_schedule_forget()
    transaction.on_commit(fee_schedule_forget)


class FeeSchedule(models.Model):
    """The fee rates and fund shares from ``valid_from`` until the next row's.

    Read through ``clearing.selectors.fee_terms_at``. Immutable once in
    effect: only a row whose ``valid_from`` is still in the future may be
    changed or deleted (and only to another future time).
    """

    valid_from = models.DateTimeField(_("valid from"), unique=True)
    day_ahead_per_side = _rate_field(_("day-ahead fee per side"))
    intraday_maker = _rate_field(_("intraday maker fee"))
    intraday_taker = _rate_field(_("intraday taker fee"))
    futures_per_side = _rate_field(_("futures fee per side"))
    incentive_fund_share = _share_field(_("incentive fund share"))
    rnd_fund_share = _share_field(_("R&D fund share"))
    note = models.CharField(_("note"), max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("created by"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="+", help_text=_("Empty for the schedule seeded with the market rules."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    objects = FeeScheduleQuerySet.as_manager()

    class Meta:
        verbose_name = _("fee schedule")
        verbose_name_plural = _("fee schedules")
        ordering = ("-valid_from",)
        constraints = [
            models.CheckConstraint(
                condition=Q(day_ahead_per_side__gte=0, intraday_maker__gte=0, intraday_taker__gte=0,
                            futures_per_side__gte=0),
                name="clearing_feeschedule_rates_not_negative",
            ),
            # The buy reservation covers fees at the taker rate.
            models.CheckConstraint(condition=Q(intraday_maker__lte=F("intraday_taker")),
                                   name="clearing_feeschedule_maker_le_taker"),
            models.CheckConstraint(
                condition=Q(incentive_fund_share__gte=0, rnd_fund_share__gte=0)
                & Q(incentive_fund_share__lte=Decimal(1) - F("rnd_fund_share")),
                name="clearing_feeschedule_shares_within_revenue",
            ),
        ]

    def __str__(self) -> str:
        return str(_("Fee schedule from %(when)s") % {
            "when": timezone.localtime(self.valid_from).strftime("%Y-%m-%d %H:%M")})

    def save(self, *args: Any, **kwargs: Any) -> None:
        _forget_fee_schedule()
        now = timezone.now()
        if self._state.adding:
            super().save(*args, **kwargs)
            return
        in_effect = ImmutableError("This fee schedule is in effect and can no longer be changed.")
        if type(self)._base_manager.filter(pk=self.pk, valid_from__lte=now).exists():
            raise in_effect
        if self.valid_from <= now:
            raise ImmutableError("A fee schedule cannot be moved to a time that has passed.")
        # One conditional UPDATE: if the stored row took effect in the
        # meantime, nothing is written (a trade may already use it).
        fields = {f.attname: getattr(self, f.attname) for f in self._meta.concrete_fields
                  if not f.primary_key and f.name not in ("created_at", "created_by")}
        changed = models.QuerySet.update(
            type(self)._base_manager.filter(pk=self.pk, valid_from__gt=now), **fields)
        if changed != 1:
            raise in_effect

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        if type(self)._base_manager.filter(pk=self.pk, valid_from__lte=timezone.now()).exists():
            raise ImmutableError("A fee schedule that is in effect cannot be deleted.")
        _forget_fee_schedule()
        return super().delete(*args, **kwargs)

    @property
    def in_effect(self) -> bool:
        return self.valid_from is not None and self.valid_from <= timezone.now()

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        errors: dict[str, Any] = {}
        from clearing.selectors import FEE_SCHEDULE_CACHE_SECONDS

        lead = datetime.timedelta(seconds=FEE_SCHEDULE_CACHE_SECONDS)
        if self.valid_from is not None and self.valid_from <= timezone.now() + 2 * lead:
            # Every server process re-reads the schedule within ``lead``.
            errors["valid_from"] = _("A fee schedule must start at least a minute from now.")
        if (self.intraday_maker is not None and self.intraday_taker is not None
                and self.intraday_maker > self.intraday_taker):
            errors["intraday_maker"] = _("The maker fee must not exceed the taker fee.")
        shares = (self.incentive_fund_share, self.rnd_fund_share)
        if None not in shares and sum(shares) > 1:
            errors["rnd_fund_share"] = _("The two fund shares together must not exceed 1.")
        if errors:
            raise ValidationError(errors)


class WithdrawalRequest(models.Model):
    """A member's request to pay cash out to its bank account (four eyes).

    Changed only by ``clearing.services.cash``: the status moves once from
    ``requested`` by a conditional UPDATE.
    """

    class Status(models.TextChoices):
        REQUESTED = "requested", _("requested")
        APPROVED = "approved", _("approved (paid out)")
        REJECTED = "rejected", _("rejected")
        CANCELLED = "cancelled", _("cancelled")

    organisation = models.ForeignKey(
        "accounts.Organisation", verbose_name=_("organisation"), on_delete=models.PROTECT,
        related_name="withdrawal_requests",
    )
    amount = models.DecimalField(_("amount (EUR)"), max_digits=18, decimal_places=2)
    # The organisation's verified payout account at the time of the request.
    iban = models.CharField(_("IBAN"), max_length=34)
    holder_name = models.CharField(_("account holder"), max_length=70, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("requested by"), on_delete=models.PROTECT, related_name="+",
    )
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("entered by"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="+", help_text=_("The operator who entered the request on the member's behalf, if one."),
    )
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now, db_index=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.REQUESTED)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("decided by"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="+",
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    hold_entry = models.ForeignKey(
        JournalEntry, verbose_name=_("hold entry"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="+", help_text=_("The entry that moved the amount from cash available to pending."),
    )
    entry = models.ForeignKey(
        JournalEntry, verbose_name=_("journal entry"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="+", help_text=_("The payout (approved) or the return (rejected, cancelled)."),
    )

    class Meta:
        verbose_name = _("withdrawal request")
        verbose_name_plural = _("withdrawal requests")
        ordering = ("-requested_at", "-id")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="clearing_withdrawal_amount_positive"),
            models.CheckConstraint(
                condition=Q(status="requested", decided_by__isnull=True, decided_at__isnull=True)
                | (~Q(status="requested") & Q(decided_at__isnull=False)),
                name="clearing_withdrawal_decided_iff_not_open",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.amount} EUR {self.organisation}"


# --- Payout accounts (issue 7 item 10; docs/architecture.md "Settlement policy and payout accounts") ---

HOLDER_NAME_MAX_LENGTH = 70  # a SEPA account holder name


class PayoutAccount(models.Model):
    """The organisation's verified bank account: the only place withdrawals go.

    Written only by ``clearing.services.cash.payout_change_approve``, i.e.
    after two operators agreed to a ``PayoutAccountChange``.
    """

    organisation = models.OneToOneField(
        "accounts.Organisation", verbose_name=_("organisation"), on_delete=models.PROTECT,
        related_name="payout_account",
    )
    iban = models.CharField(_("IBAN"), max_length=34)
    holder_name = models.CharField(_("account holder"), max_length=HOLDER_NAME_MAX_LENGTH)
    verified_at = models.DateTimeField(_("verified at"))
    change = models.OneToOneField(
        "PayoutAccountChange", verbose_name=_("approved change"), on_delete=models.PROTECT, related_name="+",
    )

    class Meta:
        verbose_name = _("payout account")
        verbose_name_plural = _("payout accounts")
        ordering = ("organisation_id",)

    def __str__(self) -> str:
        return f"{self.organisation}: {self.iban}"


class PayoutAccountChange(models.Model):
    """A request to set or change an organisation's payout account (four eyes).

    A member owner requests it, or an operator enters it; two different
    operators approve it (the one who entered it counts as the first), none
    of them a member of the organisation. The status moves only by
    conditional UPDATEs in ``clearing.services.cash``.
    """

    class Status(models.TextChoices):
        REQUESTED = "requested", _("requested, awaiting a first operator")
        FIRST_APPROVED = "first_approved", _("awaiting a second operator")
        APPROVED = "approved", _("approved (in force)")
        REJECTED = "rejected", _("rejected")
        CANCELLED = "cancelled", _("cancelled")

    OPEN_STATUSES = (Status.REQUESTED, Status.FIRST_APPROVED)

    organisation = models.ForeignKey(
        "accounts.Organisation", verbose_name=_("organisation"), on_delete=models.PROTECT,
        related_name="payout_account_changes",
    )
    iban = models.CharField(_("IBAN"), max_length=34)
    holder_name = models.CharField(_("account holder"), max_length=HOLDER_NAME_MAX_LENGTH)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("requested by"), on_delete=models.PROTECT, related_name="+",
    )
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now, db_index=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.REQUESTED)
    first_approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("first operator"), on_delete=models.PROTECT, null=True,
        blank=True, related_name="+", help_text=_("The operator who entered or first approved the change."),
    )
    first_approved_at = models.DateTimeField(_("first approved at"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("decided by"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="+", help_text=_("The second operator (approved), or who rejected or cancelled it."),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("payout account change")
        verbose_name_plural = _("payout account changes")
        ordering = ("-requested_at", "-id")
        constraints = [
            # One open change per organisation: two could otherwise race to be the account.
            models.UniqueConstraint(fields=("organisation",), condition=Q(status__in=("requested", "first_approved")),
                                    name="clearing_payoutchange_one_open_per_org"),
            models.CheckConstraint(
                condition=Q(status="requested", first_approved_by__isnull=True)
                | (~Q(status="requested") & ~Q(status="first_approved"))
                | Q(status="first_approved", first_approved_by__isnull=False),
                name="clearing_payoutchange_first_operator"),
            models.CheckConstraint(
                condition=~Q(status="approved")
                | (Q(first_approved_by__isnull=False) & Q(decided_by__isnull=False)
                   & ~Q(decided_by=F("first_approved_by"))),
                name="clearing_payoutchange_two_operators"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.organisation}: {self.iban}"


# --- Fees as published (issue 7 item 7; docs/architecture.md "Fees as published") ----------


class FeeAccrual(models.Model):
    """One member's fees of one calendar month (Europe/Berlin).

    ``accrued`` is the exact sum of its trades' fees in the month; ``held``
    is what its ``fee_reserve`` holds for the month, always
    ``clearing.fees.fee_held(accrued)``. Written by the order service
    (``clearing.services.fees.FeeBook``) while the organisation is locked,
    and marked charged once by ``fees_charge_month``.
    """

    organisation = models.ForeignKey(
        "accounts.Organisation", verbose_name=_("organisation"), on_delete=models.PROTECT,
        related_name="fee_accruals",
    )
    month = models.DateField(_("month"), help_text=_("The first day of the calendar month."))
    accrued = models.DecimalField(_("fees accrued (EUR, exact)"), max_digits=24, decimal_places=6, default=0)
    held = models.DecimalField(_("held incl. VAT (EUR)"), max_digits=18, decimal_places=2, default=0)
    charged_at = models.DateTimeField(_("charged at"), null=True, blank=True)
    entry = models.ForeignKey(
        JournalEntry, verbose_name=_("journal entry"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="+", help_text=_("The entry that charged the month; empty for a month of less than a cent."),
    )
    invoice = models.ForeignKey(
        "Invoice", verbose_name=_("invoice"), on_delete=models.PROTECT, null=True, blank=True, related_name="+",
    )

    class Meta:
        verbose_name = _("fee accrual")
        verbose_name_plural = _("fee accruals")
        ordering = ("-month", "organisation_id")
        constraints = [
            models.UniqueConstraint(fields=("organisation", "month"), name="clearing_feeaccrual_one_per_month"),
            models.CheckConstraint(condition=Q(accrued__gte=0) & Q(held__gte=0),
                                   name="clearing_feeaccrual_not_negative"),
            models.CheckConstraint(condition=Q(month__day=1), name="clearing_feeaccrual_month_first_day"),
            models.CheckConstraint(condition=Q(charged_at__isnull=False) | Q(entry__isnull=True, invoice__isnull=True),
                                   name="clearing_feeaccrual_entry_only_when_charged"),
        ]

    def __str__(self) -> str:
        return f"{self.organisation_id} {self.month:%Y-%m}: {self.accrued}"


class JobFailure(models.Model):
    """A Celery job that failed for good (after its retries): an operator's
    alarm until the same job next succeeds or an operator acknowledges it
    (``clearing.services.jobs``; docs/embedded.md, "Failing jobs raise the alarm").

    Recorded by the worker's ``task_failure`` signal (``exchange.celery``);
    shown by the reconciliation check ``jobs_succeed`` (admin "Abstimmung",
    ``manage.py reconcile``, the operators' alert mail) and by ``/healthz``.
    """

    class Resolution(models.TextChoices):
        SUCCEEDED = "succeeded", _("the job succeeded again")
        ACKNOWLEDGED = "acknowledged", _("acknowledged by an operator")

    task = models.CharField(_("job"), max_length=200)
    task_id = models.CharField(_("run id"), max_length=64, blank=True)
    error = models.TextField(_("error"))
    traceback = models.TextField(_("traceback"), blank=True)
    failed_at = models.DateTimeField(_("time of failure"), default=timezone.now)
    resolved_at = models.DateTimeField(_("alarm ended at"), null=True, blank=True)
    resolution = models.CharField(_("how the alarm ended"), max_length=20, choices=Resolution.choices, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("acknowledged by"),
                                    on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    class Meta:
        verbose_name = _("failed job")
        verbose_name_plural = _("failed jobs")
        ordering = ("-failed_at", "-id")
        indexes = [
            # The open alarms: read by every health check, cleared by every success.
            models.Index(fields=("task",), condition=Q(resolved_at__isnull=True), name="clearing_jobfailure_open"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(resolved_at__isnull=True, resolution="", resolved_by__isnull=True)
                           | Q(resolved_at__isnull=False, resolution="succeeded", resolved_by__isnull=True)
                           | Q(resolved_at__isnull=False, resolution="acknowledged", resolved_by__isnull=False)),
                name="clearing_jobfailure_resolution_consistent"),
        ]

    def __str__(self) -> str:
        return f"{self.task} {self.failed_at:%Y-%m-%d %H:%M}: {self.error[:80]}"
