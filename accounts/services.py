"""Writes of the accounts app: onboarding, members, KYC, API tokens.

Every function is keyword-only and raises ``exchange.errors.ExchangeError``
with a contract code when a rule says no; the transaction it owns is then
rolled back, so a refused request changes nothing. Views, the API, the admin
and management commands all come through here.
"""

import datetime
import hashlib
import logging
import os
import secrets
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import filetype
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.authentication import hash_token
from accounts.models import (
    ApiToken,
    AuditLog,
    Invitation,
    KycCase,
    KycDocument,
    Membership,
    Organisation,
    User,
    normalize_register_number,
    normalize_vat_id,
)
from accounts.selectors import kyc_status_of, membership_for, organisation_taken_fields
from clearing.payin import payin_instructions
from exchange.errors import ExchangeError
from exchange.site import absolute_url

logger = logging.getLogger(__name__)

# "owner": what only owners may do on the exchange (the kill switch; cancelling
# the organisation's orders without the trader role, market.services.orders).
Role = Literal["trader", "provider", "owner"]

TOKEN_PREFIX = "rb_"  # noqa: S105  (a public marker that makes leaked tokens recognisable, not a secret)
MAX_DOCUMENTS_PER_CASE = 20
SNIFF_BYTES = 8192


# --- helpers -----------------------------------------------------------------------


def _invalid(fields: dict[str, list[str]], detail: str | None = None) -> ExchangeError:
    return ExchangeError("invalid", detail or _("Please correct the marked fields."), fields)


def _fields_from_validation_error(error: ValidationError) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for name, messages in error.message_dict.items():
        key = "non_field_errors" if name == "__all__" else name
        fields.setdefault(key, []).extend(str(message) for message in messages)
    return fields


def audit_record(
    *,
    actor: User | None,
    action: str,
    organisation: Organisation | None,
    obj: Any,
    before: dict[str, Any],
    after: dict[str, Any],
    reason: str = "",
) -> AuditLog:
    return AuditLog.objects.create(
        actor=actor,
        action=action,
        organisation=organisation,
        object_type=obj._meta.label,
        object_id=str(obj.pk),
        before=before,
        after=after,
        reason=reason,
    )


def _send_mail_on_commit(*, to: Iterable[str], subject: Any, template: str, context: dict[str, Any]) -> None:
    """Render now, in the site's language (we don't know the reader's; the
    subject is a lazy msgid so that it follows too), and send after commit: a
    refused or rolled-back decision mails no one, and a failing mail server
    can't undo a decision that was taken."""
    recipients = sorted({address for address in to if address})
    if not recipients:
        return
    with translation.override(settings.LANGUAGE_CODE):
        body = render_to_string(template, {name: _resolved(value) for name, value in context.items()})
        subject_line = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + str(subject) % context.get("subject_args", {})

    def send() -> None:
        try:
            EmailMessage(subject_line, body, settings.DEFAULT_FROM_EMAIL, recipients).send()
        except (smtplib.SMTPException, OSError):
            logger.exception("could not send %r to %s", subject_line, recipients)

    transaction.on_commit(send)


def _resolved(value: Any) -> Any:
    # Lazy labels become text in the active language (template filters such
    # as join don't accept lazy strings).
    if isinstance(value, Promise):
        return str(value)
    if isinstance(value, list):
        return [_resolved(item) for item in value]
    return value


def _owner_emails(organisation: Organisation) -> list[str]:
    return list(
        organisation.memberships.filter(is_owner=True, user__is_active=True).values_list("user__email", flat=True)
    )


def _require_owner(*, user: User, organisation: Organisation) -> Membership:
    membership = Membership.objects.filter(user_id=user.pk, organisation=organisation, is_owner=True).first()
    if membership is None:
        raise ExchangeError("not_permitted", _("Only an owner of the organisation may do this."))
    return membership


def _lock_case(organisation: Organisation) -> KycCase:
    # The case row is the lock for everything KYC of one organisation:
    # uploads, submission and decisions serialise on it.
    case, _created = KycCase.objects.get_or_create(organisation=organisation)
    return KycCase.objects.select_for_update().get(pk=case.pk)


ROLE_LABELS = {"owner": gettext_lazy("owner"), "trader": gettext_lazy("trader"), "provider": gettext_lazy("provider"),
               "viewer": gettext_lazy("viewer")}


def role_label(role: str) -> str:
    """The role's name in the active language."""
    return str(ROLE_LABELS.get(role, role))


# --- organisations -------------------------------------------------------------------


@transaction.atomic(durable=True)
def organisation_create(
    *,
    user: User,
    legal_name: str,
    legal_form: str,
    register_court: str,
    register_type: str,
    register_number: str,
    vat_id: str,
    street: str,
    postal_code: str,
    city: str,
    state: str,
    founding_date: datetime.date | None,
    employees_band: str,
    turnover_band: str,
) -> Organisation:
    """A member organisation with a draft KYC case; its creator becomes owner
    and trader. Observer organisations are set up by operators in the admin."""
    # The user's row is the lock for "one membership per person": two
    # registrations or an invitation accepted at the same moment queue here.
    User.objects.select_for_update().filter(pk=user.pk).first()
    if Membership.objects.filter(user_id=user.pk).exists():
        raise ExchangeError(
            "invalid",
            _("You already belong to an organisation. A person acts for one organisation only."),
        )
    organisation = Organisation(
        kind=Organisation.Kind.MEMBER,
        legal_name=legal_name.strip(),
        legal_form=legal_form.strip(),
        register_court=register_court.strip(),
        register_type=register_type,
        register_number=normalize_register_number(register_number),
        vat_id=normalize_vat_id(vat_id),
        street=street.strip(),
        postal_code=postal_code.strip(),
        city=city.strip(),
        state=state,
        founding_date=founding_date,
        employees_band=employees_band,
        turnover_band=turnover_band,
    )
    fields: dict[str, list[str]] = {}
    try:
        organisation.full_clean(validate_constraints=False)
    except ValidationError as error:
        fields = _fields_from_validation_error(error)
    taken = organisation_taken_fields(
        vat_id=organisation.vat_id,
        register_court=organisation.register_court,
        register_type=organisation.register_type,
        register_number=organisation.register_number,
    )
    for name, messages in taken.items():
        fields.setdefault(name, messages)
    if fields:
        raise _invalid(fields)
    try:
        with transaction.atomic():
            organisation.save()
    except IntegrityError:
        # Someone registered the same VAT ID or register entry a moment ago.
        raise _invalid(
            {"vat_id": [_("An organisation with this VAT ID or register entry is already registered.")]}
        ) from None
    KycCase.objects.create(organisation=organisation)
    Membership.objects.create(user=user, organisation=organisation, is_owner=True, is_trader=True)
    audit_record(actor=user, action="organisation.create", organisation=organisation, obj=organisation,
           before={}, after={"legal_name": organisation.legal_name, "owner": user.email})
    return organisation


@transaction.atomic
def organisation_save_by_operator(*, operator: User, organisation: Organisation, changed: list[str]) -> Organisation:
    """An operator's edit or new organisation in the admin (e.g. setting up an
    authority as observer), audited field by field. Not durable: the admin's
    change view runs it inside its own transaction. The admin form has
    validated the fields already."""
    if not (operator.is_active and operator.is_staff):
        raise ExchangeError("not_permitted", _("Only an operator may do this."))
    adding = organisation._state.adding
    before: dict[str, Any] = {}
    if not adding:
        old = Organisation.objects.get(pk=organisation.pk)
        before = {name: _jsonable(getattr(old, name)) for name in changed}
    organisation.vat_id = normalize_vat_id(organisation.vat_id)
    organisation.register_number = normalize_register_number(organisation.register_number)
    organisation.save()
    KycCase.objects.get_or_create(organisation=organisation)
    if adding or changed:
        after = {name: _jsonable(getattr(organisation, name)) for name in changed}
        audit_record(actor=operator, action="organisation.create" if adding else "organisation.change",
               organisation=organisation, obj=organisation, before=before, after=after)
    return organisation


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


# --- members and invitations ------------------------------------------------------------


@transaction.atomic(durable=True)
def membership_invite(
    *,
    inviter: User,
    email: str,
    is_owner: bool = False,
    is_trader: bool = False,
    is_provider: bool = False,
    is_viewer: bool = False,
) -> tuple[Invitation, str]:
    """An owner invites a colleague; the token goes out once, in the e-mail,
    and is returned for the caller (tests, a future API), never stored."""
    inviter_membership = membership_for(inviter)
    if inviter_membership is None or not inviter_membership.is_owner:
        raise ExchangeError("not_permitted", _("Only an owner of the organisation may invite colleagues."))
    organisation = inviter_membership.organisation
    email = (email or "").strip().lower()
    fields: dict[str, list[str]] = {}
    try:
        validate_email(email)
    except ValidationError:
        fields["email"] = [_("Enter a valid e-mail address.")]
    if not (is_owner or is_trader or is_provider or is_viewer):
        fields["roles"] = [_("Choose at least one role.")]
    if organisation.is_observer and (is_trader or is_provider):
        fields["roles"] = [_("An observer organisation has owners and viewers only: it never trades.")]
    if "email" not in fields:
        if Membership.objects.filter(user__email__iexact=email).exists():
            fields["email"] = [_("This person already belongs to an organisation.")]
        elif organisation.invitations.filter(
            email__iexact=email, accepted_at__isnull=True, expires_at__gt=timezone.now()
        ).exists():
            fields["email"] = [_("This person has already been invited and the invitation is still open.")]
    if fields:
        raise _invalid(fields)

    token = secrets.token_urlsafe(32)
    now = timezone.now()
    invitation = Invitation.objects.create(
        organisation=organisation,
        email=email,
        is_owner=is_owner,
        is_trader=is_trader,
        is_provider=is_provider,
        is_viewer=is_viewer,
        token_hash=hash_token(token),
        invited_by=inviter,
        created_at=now,
        expires_at=now + Invitation.VALID_FOR,
    )
    audit_record(actor=inviter, action="membership.invite", organisation=organisation, obj=invitation,
           before={}, after={"email": email, "roles": invitation.roles})
    _send_mail_on_commit(
        to=[email],
        subject=gettext_lazy("Invitation to %(organisation)s"),
        template="accounts/email/invitation.txt",
        context={
            "organisation": organisation.legal_name,
            "inviter": inviter.full_name or inviter.email,
            "roles": [ROLE_LABELS[role] for role in invitation.roles],
            "url": absolute_url(reverse("invitation_accept", args=[token])),
            "expires_at": invitation.expires_at,
            "subject_args": {"organisation": organisation.legal_name},
        },
    )
    return invitation, token


@transaction.atomic(durable=True)
def invitation_accept(*, user: User, token: str) -> Membership:
    # Lock order: the user (one membership per person), then the invitation.
    User.objects.select_for_update().filter(pk=user.pk).first()
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("organisation")
        .filter(token_hash=hash_token(token or ""))
        .first()
    )
    if invitation is None:
        raise ExchangeError("not_found", _("This invitation does not exist."))
    if invitation.accepted_at is not None:
        raise ExchangeError("invalid", _("This invitation has already been used."))
    if invitation.is_expired():
        raise ExchangeError("invalid", _("This invitation has expired. Ask the owner to invite you again."))
    if invitation.email.lower() != user.email.lower():
        raise ExchangeError(
            "not_permitted",
            _("This invitation was sent to another e-mail address. Log in with that address to accept it."),
        )
    if Membership.objects.filter(user_id=user.pk).exists():
        raise ExchangeError(
            "invalid", _("You already belong to an organisation. A person acts for one organisation only.")
        )
    membership = Membership.objects.create(
        user=user,
        organisation=invitation.organisation,
        is_owner=invitation.is_owner,
        is_trader=invitation.is_trader,
        is_provider=invitation.is_provider,
        is_viewer=invitation.is_viewer,
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    audit_record(actor=user, action="membership.join", organisation=invitation.organisation, obj=membership,
           before={}, after={"email": user.email, "roles": membership.roles, "invitation": invitation.pk})
    return membership


# --- KYC ---------------------------------------------------------------------------------------


def _sniff_content_type(upload: UploadedFile) -> str | None:
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)
    kind = filetype.guess(head)
    if kind is None or kind.mime not in KycDocument.EXTENSION_BY_CONTENT_TYPE:
        return None
    return str(kind.mime)


NAME_EXTENSIONS = {
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}


@transaction.atomic(durable=True)
def kyc_document_add(*, user: User, organisation: Organisation, kind: str, upload: UploadedFile) -> KycDocument:
    """Store a KYC document. The type is detected from the content; the name
    only has to agree with it when it names one of the accepted types."""
    _require_owner(user=user, organisation=organisation)
    case = _lock_case(organisation)
    if not case.is_editable:
        raise ExchangeError(
            "invalid",
            _("Documents can only be added while the KYC case is a draft or more information is needed."),
        )
    fields: dict[str, list[str]] = {}
    if kind not in KycDocument.Kind.values:
        fields["kind"] = [_("Choose the kind of document.")]
    size = upload.size or 0
    limit = settings.KYC_MAX_UPLOAD_BYTES
    original_name = os.path.basename(upload.name or "")[:255] or "document"
    content_type: str | None = None
    if size == 0:
        fields["file"] = [_("The file is empty.")]
    elif size > limit:
        fields["file"] = [
            _("The file is too large (%(size)s MB); at most %(limit)s MB are allowed.")
            % {"size": f"{size / 1024 / 1024:.1f}", "limit": f"{limit / 1024 / 1024:.0f}"}
        ]
    else:
        content_type = _sniff_content_type(upload)
        named_type = NAME_EXTENSIONS.get(os.path.splitext(original_name)[1].lower())
        if content_type is None:
            fields["file"] = [_("Only PDF, PNG and JPEG files are accepted; this file's content is none of them.")]
        elif named_type is not None and named_type != content_type:
            fields["file"] = [
                _("The file's name says %(named)s, but its content is %(actual)s. Please check the file.")
                % {
                    "named": KycDocument.EXTENSION_BY_CONTENT_TYPE[named_type].upper(),
                    "actual": KycDocument.EXTENSION_BY_CONTENT_TYPE[content_type].upper(),
                }
            ]
    if "file" not in fields and case.documents.count() >= MAX_DOCUMENTS_PER_CASE:
        fields["file"] = [_("A KYC case holds at most %(count)d documents.") % {"count": MAX_DOCUMENTS_PER_CASE}]
    if fields or content_type is None:
        raise _invalid(fields)

    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    document = KycDocument(
        case=case,
        kind=kind,
        original_name=original_name,
        content_type=content_type,
        size=size,
        sha256=digest.hexdigest(),
        uploaded_by=user,
    )
    # The file is written last, just before the row; should the row fail, the
    # file goes too, so a refused upload leaves nothing behind.
    document.file.save(original_name, upload, save=False)
    try:
        document.save()
        audit_record(actor=user, action="kyc.document_add", organisation=organisation, obj=document, before={},
               after={"kind": kind, "name": original_name, "sha256": document.sha256, "size": size})
    except BaseException:
        document.file.storage.delete(document.file.name)
        raise
    return document


@transaction.atomic(durable=True)
def kyc_submit(*, user: User, organisation: Organisation) -> KycCase:
    _require_owner(user=user, organisation=organisation)
    case = _lock_case(organisation)
    if not case.is_editable:
        raise ExchangeError(
            "invalid",
            _("The KYC case cannot be submitted now: its status is “%(status)s”.")
            % {"status": case.get_status_display()},
        )
    present = set(case.documents.values_list("kind", flat=True))
    missing = [KycDocument.Kind(kind).label for kind in KycDocument.REQUIRED_KINDS if kind not in present]
    if missing:
        detail = _("Please upload these documents first: %(missing)s.") % {
            "missing": ", ".join(str(label) for label in missing)
        }
        raise _invalid({"documents": [detail]}, detail)
    before = case.status
    case.status = KycCase.Status.SUBMITTED
    case.submitted_at = timezone.now()
    case.save(update_fields=["status", "submitted_at"])
    audit_record(actor=user, action="kyc.submit", organisation=organisation, obj=case,
           before={"status": before}, after={"status": case.status})
    _send_mail_on_commit(
        to=settings.OPERATOR_EMAILS,
        subject=gettext_lazy("KYC submitted for review: %(organisation)s"),
        template="accounts/email/kyc_submitted.txt",
        context={
            "organisation": organisation.legal_name,
            "url": absolute_url(reverse("admin:accounts_kyccase_change", args=[case.pk])),
            "subject_args": {"organisation": organisation.legal_name},
        },
    )
    return case


DECISION_STATUS: dict[str, str] = {
    "approve": KycCase.Status.APPROVED,
    "reject": KycCase.Status.REJECTED,
    "needs_info": KycCase.Status.NEEDS_INFO,
}
REASON_REQUIRED = frozenset({"reject", "needs_info"})


@transaction.atomic(durable=True)
def kyc_decide(*, operator: User, case: KycCase, decision: str, reason: str = "") -> KycCase:
    """An operator approves, rejects or asks for more information. Each
    decision is audited and mailed to the organisation's owners."""
    if not (operator.is_active and operator.is_staff):
        raise ExchangeError("not_permitted", _("Only an operator may decide a KYC case."))
    reason = (reason or "").strip()
    if decision not in DECISION_STATUS:
        raise _invalid({"decision": [_("Choose approve, reject or ask for more information.")]})
    if decision in REASON_REQUIRED and not reason:
        raise _invalid({"reason": [_("Give a reason: the organisation's owners will read it.")]})
    case = KycCase.objects.select_for_update().select_related("organisation").get(pk=case.pk)
    organisation = case.organisation
    if Membership.objects.filter(user_id=operator.pk, organisation=organisation).exists():
        raise ExchangeError("not_permitted", _("An operator may not decide the KYC case of their own organisation."))
    if case.status != KycCase.Status.SUBMITTED:
        raise ExchangeError(
            "invalid",
            _("Only a submitted KYC case can be decided; this one is “%(status)s”.")
            % {"status": case.get_status_display()},
        )
    before = case.status
    case.status = DECISION_STATUS[decision]
    case.decided_at = timezone.now()
    case.decided_by = operator
    case.reason = reason
    case.save(update_fields=["status", "decided_at", "decided_by", "reason"])
    audit_record(actor=operator, action=f"kyc.{decision}", organisation=organisation, obj=case,
           before={"status": before}, after={"status": case.status}, reason=reason)
    subjects = {
        "approve": gettext_lazy("Your KYC review is approved: %(organisation)s"),
        "reject": gettext_lazy("Your KYC review was rejected: %(organisation)s"),
        "needs_info": gettext_lazy("Your KYC review needs more information: %(organisation)s"),
    }
    _send_mail_on_commit(
        to=_owner_emails(organisation),
        subject=subjects[decision],
        template="accounts/email/kyc_decision.txt",
        context={
            "organisation": organisation.legal_name,
            "decision": decision,
            "reason": reason,
            "url": absolute_url(reverse("organisation_detail")),
            # An approved member is told at once how to pay in (bank details and its reference).
            "payin": payin_instructions(organisation) if decision == "approve" else None,
            "subject_args": {"organisation": organisation.legal_name},
        },
    )
    return case


# --- the trading gate -------------------------------------------------------------------------


def trading_gate_check(membership: Membership | None, role: Role = "trader") -> Membership:
    """The rule of ``trading_gate`` on a membership already loaded (the
    context processor uses it to stay at one query)."""
    if role not in ("trader", "provider", "owner"):
        raise ValueError(f"unknown role {role!r}")
    if membership is None:
        raise ExchangeError("not_permitted", _("You are not a member of an organisation on the exchange."))
    organisation = membership.organisation
    if organisation.is_observer:
        raise ExchangeError(
            "not_permitted", _("Your organisation is an observer: it has read-only access and never trades.")
        )
    if not getattr(membership, f"is_{role}"):
        raise ExchangeError(
            "not_permitted",
            _("Your role in %(organisation)s does not allow this: it needs the %(role)s role.")
            % {"organisation": organisation.legal_name, "role": role_label(role)},
        )
    if kyc_status_of(organisation) != KycCase.Status.APPROVED:
        raise ExchangeError(
            "kyc_not_approved",
            _("The KYC review of %(organisation)s is not approved yet; trading opens once an operator approves it.")
            % {"organisation": organisation.legal_name},
        )
    return membership


def trading_gate(*, user: Any, role: Role = "trader") -> Membership:
    """THE answer to "may this user trade (role="trader") or offer capacity
    (role="provider")?": the membership if so, else ExchangeError
    ``not_permitted`` (no membership, observer, role missing) or
    ``kyc_not_approved``."""
    return trading_gate_check(membership_for(user), role)


def may(user: Any, role: Role = "trader") -> bool:
    try:
        trading_gate(user=user, role=role)
    except ExchangeError:
        return False
    return True


# --- API tokens ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str


def _check_otp(user: User, otp: str | None) -> None:
    # Same authenticators as allauth's login stage: TOTP and recovery codes
    # (WebAuthn can't be typed in, so it is not offered here).
    enabled = list(Authenticator.objects.filter(user_id=user.pk))
    if not enabled:
        return
    authenticators = [auth for auth in enabled if auth.type != Authenticator.Type.WEBAUTHN]
    if not otp:
        raise ExchangeError(
            "otp_required",
            _("Two-factor authentication is on for this account: send the code from your authenticator as otp."),
            {"otp": [_("This field is required.")]},
        )
    # TOTP first: recovery codes are used up when they match.
    authenticators.sort(key=lambda auth: auth.type != Authenticator.Type.TOTP)
    for authenticator in authenticators:
        if authenticator.wrap().validate_code(otp.strip()):
            authenticator.record_usage()
            return
    raise ExchangeError("authentication_failed", _("The one-time code is not correct."),
                        {"otp": [_("The one-time code is not correct.")]})


@transaction.atomic(durable=True)
def api_token_create(*, email: str, password: str, otp: str | None = None) -> IssuedToken:
    """Log in as the web login would (active, verified e-mail, second factor
    when enabled) and issue a token. Only its SHA-256 is stored."""
    refused = ExchangeError("authentication_failed", _("E-mail address or password is not correct."))
    user = User.objects.filter(email__iexact=(email or "").strip()).first()
    if user is None:
        # Hash anyway, so the answer takes as long as for a real account.
        User().set_password(password)
        raise refused
    if not user.check_password(password):
        raise refused
    if not user.is_active:
        raise ExchangeError("authentication_failed", _("This account is inactive."))
    if not EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists():
        raise ExchangeError(
            "authentication_failed",
            _("Verify your e-mail address first: follow the link in the e-mail we sent you."),
        )
    _check_otp(user, otp)
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, key_hash=hash_token(key), prefix=key[:10])
    return IssuedToken(token=token, key=key)


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> None:
    # Not durable: the admin's delete view calls it inside its own transaction.
    ApiToken.objects.filter(pk=token.pk).delete()
