"""Members of the exchange: people (User), the organisations they act for,
their roles, the KYC review of each organisation, and the audit trail of
operator decisions. Business rules live in ``accounts.services``; the models
hold field validation and the facts derived from fields (SME, start-up)."""

import datetime
import re
import uuid
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Case, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from stdnum.de import vat as de_vat
from stdnum.exceptions import InvalidChecksum
from stdnum.exceptions import ValidationError as StdnumValidationError


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra: Any) -> "User":
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> "User":
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> "User":
        extra.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Members log in with their e-mail address; there is no username."""

    email = models.EmailField(_("e-mail address"), unique=True)
    full_name = models.CharField(_("full name"), max_length=200, blank=True)
    is_staff = models.BooleanField(_("operator"), default=False,
                                   help_text=_("Operators may log in to the admin site."))
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.email


class ApiToken(models.Model):
    """A bearer token for the API. Only its SHA-256 is stored: a leaked
    database leaks no usable token. A user may hold several (one per client)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("user"))
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(_("prefix"), max_length=12, editable=False,
                              help_text=_("The first characters, to recognise a token without revealing it."))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


# --- Organisations -------------------------------------------------------------

VAT_ID_RE = re.compile(r"^DE\d{9}$")


def normalize_vat_id(value: str) -> str:
    """``de 136.695 976`` -> ``DE136695976``; anything else is left for the validator."""
    compact = re.sub(r"[\s.\-/]", "", value or "").upper()
    if re.fullmatch(r"\d{9}", compact):
        compact = "DE" + compact
    return compact


def normalize_register_number(value: str) -> str:
    """``hrb  12345 b`` -> ``12345 B``: the register type has a field of its own."""
    compact = re.sub(r"\s+", " ", (value or "").strip().upper())
    return re.sub(r"^HR[AB]\s*", "", compact)


def validate_german_vat_id(value: str) -> None:
    """German USt-IdNr.: ``DE`` and 9 digits, the last an ISO 7064 MOD 11,10 check digit."""
    if not VAT_ID_RE.match(value):
        raise ValidationError(_("Enter a German VAT ID: DE followed by 9 digits."), code="vat_format")
    try:
        de_vat.validate(value)
    except InvalidChecksum:
        raise ValidationError(
            _("This VAT ID is not valid: its check digit does not match."), code="vat_checksum"
        ) from None
    except StdnumValidationError:
        raise ValidationError(_("Enter a German VAT ID: DE followed by 9 digits."), code="vat_format") from None


validate_register_number = RegexValidator(
    r"^\d{1,6}(?: ?[A-Z]{1,2})?$",
    _("Enter the register number without HRB/HRA, e.g. 12345 or 12345 B."),
    code="register_number",
)
validate_postal_code = RegexValidator(r"^\d{5}$", _("Enter a German postal code of 5 digits."), code="postal_code")


def years_before(day: datetime.date, years: int) -> datetime.date:
    """The same calendar day ``years`` earlier; 29 February falls back to the 28th."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


# EU recommendation 2003/361/EC as the market rules state it: fewer than 250
# staff and at most 50 M EUR turnover. The bands are chosen so that the
# threshold falls on a band boundary and the derivation is exact.
SME_MAX_EMPLOYEES_EXCLUSIVE = 250
STARTUP_MAX_AGE_YEARS = 5


class OrganisationQuerySet(models.QuerySet["Organisation"]):
    def with_derived(self, on: datetime.date | None = None) -> "OrganisationQuerySet":
        """Annotate ``sme`` and ``startup`` (booleans) as of ``on``, computed in SQL
        from the same rules as ``Organisation.is_sme()`` / ``is_startup()``."""
        on = on or timezone.localdate()
        member = Q(kind=Organisation.Kind.MEMBER)
        return self.annotate(
            sme=Case(
                When(member & Q(employees_band__in=Organisation.SME_EMPLOYEES_BANDS,
                                turnover_band__in=Organisation.SME_TURNOVER_BANDS), then=Value(True)),
                default=Value(False),
                output_field=models.BooleanField(),
            ),
            startup=Case(
                When(member & Q(founding_date__gte=years_before(on, STARTUP_MAX_AGE_YEARS), founding_date__lte=on),
                     then=Value(True)),
                default=Value(False),
                output_field=models.BooleanField(),
            ),
        )


class Organisation(models.Model):
    """A legal entity that trades (member) or watches (observer), with the KYC
    facts of market rules §6. SME and start-up status are derived, never typed."""

    class Kind(models.TextChoices):
        MEMBER = "member", _("Member")
        OBSERVER = "observer", _("Observer (public authority)")

    class RegisterType(models.TextChoices):
        HRB = "HRB", _("HRB (corporations)")
        HRA = "HRA", _("HRA (partnerships, sole traders)")

    class State(models.TextChoices):
        BW = "DE-BW", _("Baden-Württemberg")
        BY = "DE-BY", _("Bavaria")
        BE = "DE-BE", _("Berlin")
        BB = "DE-BB", _("Brandenburg")
        HB = "DE-HB", _("Bremen")
        HH = "DE-HH", _("Hamburg")
        HE = "DE-HE", _("Hesse")
        MV = "DE-MV", _("Mecklenburg-Western Pomerania")
        NI = "DE-NI", _("Lower Saxony")
        NW = "DE-NW", _("North Rhine-Westphalia")
        RP = "DE-RP", _("Rhineland-Palatinate")
        SL = "DE-SL", _("Saarland")
        SN = "DE-SN", _("Saxony")
        ST = "DE-ST", _("Saxony-Anhalt")
        SH = "DE-SH", _("Schleswig-Holstein")
        TH = "DE-TH", _("Thuringia")

    class EmployeesBand(models.TextChoices):
        MICRO = "lt10", _("fewer than 10")
        SMALL = "10-49", _("10 to 49")
        MEDIUM = "50-249", _("50 to 249")
        LARGE = "250+", _("250 or more")

    class TurnoverBand(models.TextChoices):
        UP_TO_2M = "le2m", _("up to 2 million EUR")
        UP_TO_10M = "le10m", _("more than 2 up to 10 million EUR")
        UP_TO_50M = "le50m", _("more than 10 up to 50 million EUR")
        OVER_50M = "gt50m", _("more than 50 million EUR")

    SME_EMPLOYEES_BANDS: ClassVar[tuple[str, ...]] = (EmployeesBand.MICRO, EmployeesBand.SMALL, EmployeesBand.MEDIUM)
    SME_TURNOVER_BANDS: ClassVar[tuple[str, ...]] = (TurnoverBand.UP_TO_2M, TurnoverBand.UP_TO_10M,
                                                     TurnoverBand.UP_TO_50M)
    # Fields a member must fill in; a public authority (observer) has no
    # commercial register entry and no turnover, so they are optional there.
    MEMBER_REQUIRED_FIELDS: ClassVar[tuple[str, ...]] = (
        "register_court", "register_type", "register_number", "vat_id",
        "founding_date", "employees_band", "turnover_band",
    )

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.MEMBER)
    legal_name = models.CharField(_("legal name"), max_length=200)
    legal_form = models.CharField(_("legal form"), max_length=100,
                                  help_text=_("e.g. GmbH, UG (haftungsbeschränkt), AG"))
    register_court = models.CharField(_("register court"), max_length=100, blank=True,
                                      help_text=_("e.g. Amtsgericht München"))
    register_type = models.CharField(_("register"), max_length=3, choices=RegisterType.choices, blank=True)
    register_number = models.CharField(_("register number"), max_length=12, blank=True,
                                       validators=[validate_register_number],
                                       help_text=_("Without HRB/HRA, e.g. 12345 or 12345 B."))
    vat_id = models.CharField(_("VAT ID"), max_length=11, blank=True, validators=[validate_german_vat_id],
                              help_text=_("German VAT ID (USt-IdNr.), e.g. DE136695976."))
    street = models.CharField(_("street and number"), max_length=200)
    postal_code = models.CharField(_("postal code"), max_length=5, validators=[validate_postal_code])
    city = models.CharField(_("city"), max_length=100)
    state = models.CharField(_("federal state"), max_length=5, choices=State.choices)
    founding_date = models.DateField(_("founding date"), null=True, blank=True)
    employees_band = models.CharField(_("employees"), max_length=6, choices=EmployeesBand.choices, blank=True)
    turnover_band = models.CharField(_("annual turnover"), max_length=5, choices=TurnoverBand.choices, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = OrganisationQuerySet.as_manager()

    class Meta:
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")
        ordering: ClassVar[list[str]] = ["legal_name"]
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(
                fields=["vat_id"], condition=~Q(vat_id=""), name="organisation_vat_id_unique",
                violation_error_message=_("An organisation with this VAT ID is already registered."),
            ),
            models.UniqueConstraint(
                fields=["register_court", "register_type", "register_number"],
                condition=~Q(register_number=""),
                name="organisation_register_entry_unique",
                violation_error_message=_("An organisation with this register entry is already registered."),
            ),
        ]

    def __str__(self) -> str:
        return self.legal_name

    def clean(self) -> None:
        self.vat_id = normalize_vat_id(self.vat_id)
        errors: dict[str, list[str]] = {}
        if self.kind == self.Kind.MEMBER:
            for name in self.MEMBER_REQUIRED_FIELDS:
                if getattr(self, name) in (None, ""):
                    errors.setdefault(name, []).append(str(_("This field is required.")))
        if self.founding_date and self.founding_date > timezone.localdate():
            errors.setdefault("founding_date", []).append(str(_("The founding date cannot be in the future.")))
        if errors:
            raise ValidationError(errors)

    def is_sme(self) -> bool:
        """EU SME definition as the market rules state it (< 250 staff, <= 50 M EUR)."""
        return (
            self.kind == self.Kind.MEMBER
            and self.employees_band in self.SME_EMPLOYEES_BANDS
            and self.turnover_band in self.SME_TURNOVER_BANDS
        )

    def is_startup(self, on: datetime.date | None = None) -> bool:
        """Founded at most 5 years before ``on`` (today in Berlin by default):
        a company founded exactly 5 years ago to the day still counts."""
        if self.kind != self.Kind.MEMBER or self.founding_date is None:
            return False
        on = on or timezone.localdate()
        return years_before(on, STARTUP_MAX_AGE_YEARS) <= self.founding_date <= on

    @property
    def is_observer(self) -> bool:
        return self.kind == self.Kind.OBSERVER

    def register_display(self) -> str:
        if not self.register_number:
            return ""
        return f"{self.register_court}, {self.register_type} {self.register_number}"


class Membership(models.Model):
    """A user's place in an organisation. One per user (see docs/architecture.md)."""

    ROLE_FIELDS: ClassVar[tuple[str, ...]] = ("is_owner", "is_trader", "is_provider", "is_viewer")

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="membership", verbose_name=_("user"))
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships",
                                     verbose_name=_("organisation"))
    is_owner = models.BooleanField(_("owner"), default=False,
                                   help_text=_("Manages the organisation, its KYC documents and its members."))
    is_trader = models.BooleanField(_("trader"), default=False, help_text=_("Places orders and bids."))
    is_provider = models.BooleanField(_("provider"), default=False, help_text=_("Manages sites and capacity."))
    is_viewer = models.BooleanField(_("viewer"), default=False, help_text=_("Reads, never acts."))
    created_at = models.DateTimeField(_("joined"), auto_now_add=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints: ClassVar[list[Any]] = [
            models.CheckConstraint(
                condition=Q(is_owner=True) | Q(is_trader=True) | Q(is_provider=True) | Q(is_viewer=True),
                name="membership_has_a_role",
                violation_error_message=_("Choose at least one role."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organisation}"

    @property
    def roles(self) -> list[str]:
        return [name.removeprefix("is_") for name in self.ROLE_FIELDS if getattr(self, name)]


class Invitation(models.Model):
    """An owner's invitation of a colleague by e-mail. Only the SHA-256 of the
    token is stored; the token itself travels once, in the e-mail's link."""

    VALID_FOR = datetime.timedelta(days=7)

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="invitations",
                                     verbose_name=_("organisation"))
    email = models.EmailField(_("e-mail address"))
    is_owner = models.BooleanField(_("owner"), default=False)
    is_trader = models.BooleanField(_("trader"), default=False)
    is_provider = models.BooleanField(_("provider"), default=False)
    is_viewer = models.BooleanField(_("viewer"), default=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+",
                                   verbose_name=_("invited by"))
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    accepted_at = models.DateTimeField(_("accepted"), null=True, blank=True)

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering: ClassVar[list[str]] = ["-created_at"]
        constraints: ClassVar[list[Any]] = [
            models.CheckConstraint(
                condition=Q(is_owner=True) | Q(is_trader=True) | Q(is_provider=True) | Q(is_viewer=True),
                name="invitation_has_a_role",
                violation_error_message=_("Choose at least one role."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.organisation}"

    @property
    def roles(self) -> list[str]:
        return [name.removeprefix("is_") for name in Membership.ROLE_FIELDS if getattr(self, name)]

    def is_expired(self, now: datetime.datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.expires_at


# --- KYC -------------------------------------------------------------------------


class KycCase(models.Model):
    """The KYC review of one organisation.

    draft -> submitted (owner) -> approved | rejected | needs_info (operator);
    needs_info -> submitted (owner, after adding documents). Rejected is final:
    a rejected organisation talks to the operators, who may set up a new one.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        SUBMITTED = "submitted", _("submitted")
        NEEDS_INFO = "needs_info", _("more information needed")
        APPROVED = "approved", _("approved")
        REJECTED = "rejected", _("rejected")

    EDITABLE_STATUSES: ClassVar[tuple[str, ...]] = (Status.DRAFT, Status.NEEDS_INFO)

    organisation = models.OneToOneField(Organisation, on_delete=models.CASCADE, related_name="kyc",
                                        verbose_name=_("organisation"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    submitted_at = models.DateTimeField(_("submitted"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    decided_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                   verbose_name=_("decided by"))
    reason = models.TextField(_("reason"), blank=True,
                              help_text=_("The operator's reason, shown to the organisation's owners."))

    class Meta:
        verbose_name = _("KYC case")
        verbose_name_plural = _("KYC cases")

    def __str__(self) -> str:
        return str(_("KYC of %(organisation)s") % {"organisation": self.organisation})

    @property
    def is_approved(self) -> bool:
        return self.status == self.Status.APPROVED

    @property
    def is_editable(self) -> bool:
        return self.status in self.EDITABLE_STATUSES


def kyc_upload_to(instance: "KycDocument", filename: str) -> str:
    # A random path: neither the uploader's file name nor the organisation
    # shows in the storage, and two uploads never collide.
    extension = KycDocument.EXTENSION_BY_CONTENT_TYPE.get(instance.content_type, "bin")
    name = uuid.uuid4().hex
    return f"kyc/{name[:2]}/{name}.{extension}"


class KycDocument(models.Model):
    """A file for the KYC review, in the private default storage (no URL maps
    to it; ``accounts.views.kyc_document_download`` serves it after a check)."""

    class Kind(models.TextChoices):
        REGISTER_EXTRACT = "register_extract", _("commercial register extract")
        REPRESENTATIVE_ID = "representative_id", _("legal representative's ID document")
        OTHER = "other", _("other document")

    REQUIRED_KINDS: ClassVar[tuple[str, ...]] = (Kind.REGISTER_EXTRACT, Kind.REPRESENTATIVE_ID)
    EXTENSION_BY_CONTENT_TYPE: ClassVar[dict[str, str]] = {
        "application/pdf": "pdf",
        "image/png": "png",
        "image/jpeg": "jpg",
    }

    case = models.ForeignKey(KycCase, on_delete=models.CASCADE, related_name="documents", verbose_name=_("KYC case"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    file = models.FileField(_("file"), upload_to=kyc_upload_to, max_length=200)
    original_name = models.CharField(_("original file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=50,
                                    help_text=_("Detected from the file's content, not from its name."))
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    uploaded_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+",
                                    verbose_name=_("uploaded by"))
    uploaded_at = models.DateTimeField(_("uploaded"), auto_now_add=True)

    class Meta:
        verbose_name = _("KYC document")
        verbose_name_plural = _("KYC documents")
        ordering: ClassVar[list[str]] = ["uploaded_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.original_name}"


# --- Audit log -------------------------------------------------------------------


class AppendOnlyError(Exception):
    """An attempt to change or delete an audit record."""


class AuditLogQuerySet(models.QuerySet["AuditLog"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("The audit log is append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("The audit log is append-only.")


class AuditLog(models.Model):
    """Who did what, when, with the state before and after. Append-only: the
    model refuses to update or delete a row, and on PostgreSQL a trigger
    refuses it too (migration 0003), whatever code or SQL asks."""

    # Users and organisations named in the log can't be deleted (PROTECT):
    # SET_NULL would be an UPDATE of the log, and the log must survive them.
    actor = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              verbose_name=_("actor"))
    action = models.CharField(_("action"), max_length=50)
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="audit_log", verbose_name=_("organisation"))
    object_type = models.CharField(_("object type"), max_length=50)
    object_id = models.CharField(_("object id"), max_length=50)
    before = models.JSONField(_("before"), default=dict, blank=True)
    after = models.JSONField(_("after"), default=dict, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log")
        ordering: ClassVar[list[str]] = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action} {self.object_type}#{self.object_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("The audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("The audit log is append-only.")
