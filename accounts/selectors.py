"""Reads of the accounts app. Views, the API, the admin and later apps read
members, organisations and documents through these."""

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from accounts.authentication import PRELOADED_MEMBERSHIP, hash_token
from accounts.models import Invitation, KycCase, KycDocument, Membership, Organisation


def membership_for(user: Any) -> Membership | None:
    """The user's membership with its organisation and KYC case, in one query."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    preloaded = getattr(user, PRELOADED_MEMBERSHIP, None)
    if preloaded is not None:  # an API request: read with its token (a new membership is read afresh)
        return preloaded
    return (
        Membership.objects.select_related("organisation", "organisation__kyc")
        .filter(user_id=user.pk)
        .first()
    )


def kyc_status_of(organisation: Organisation) -> str:
    """The organisation's KYC status; an organisation set up without a case
    (e.g. by an operator in the admin) counts as a draft."""
    try:
        return organisation.kyc.status
    except KycCase.DoesNotExist:
        return KycCase.Status.DRAFT


def organisation_taken_fields(
    *, vat_id: str, register_court: str, register_type: str, register_number: str
) -> dict[str, list[str]]:
    """Which of these identifiers another organisation already holds, as
    field errors. (The unique constraints are the backstop; this names the
    field.)"""
    taken: dict[str, list[str]] = {}
    if vat_id and Organisation.objects.filter(vat_id=vat_id).exists():
        taken["vat_id"] = [_("An organisation with this VAT ID is already registered.")]
    if register_number and Organisation.objects.filter(
        register_court=register_court, register_type=register_type, register_number=register_number
    ).exists():
        taken["register_number"] = [_("An organisation with this register entry is already registered.")]
    return taken


def kyc_document_for_download(*, user: Any, pk: int) -> KycDocument | None:
    """The document if ``user`` may read it: an owner of its organisation, or an
    operator (staff). Anyone else gets None, exactly as for a made-up id, so
    that a caller answers 404 and no one learns which ids exist."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    documents = KycDocument.objects.select_related("case__organisation")
    if not user.is_staff:
        # One filter() call: both conditions hold for the same membership row.
        documents = documents.filter(
            case__organisation__memberships__user_id=user.pk,
            case__organisation__memberships__is_owner=True,
        )
    return documents.filter(pk=pk).first()


def organisation_members(*, organisation: Organisation) -> QuerySet[Membership]:
    return organisation.memberships.select_related("user").order_by("user__email")


def organisation_documents(*, organisation: Organisation) -> QuerySet[KycDocument]:
    return KycDocument.objects.filter(case__organisation=organisation).select_related("uploaded_by")


def organisation_open_invitations(*, organisation: Organisation) -> QuerySet[Invitation]:
    return organisation.invitations.filter(accepted_at__isnull=True).select_related("invited_by")


def invitation_by_token(*, token: str) -> Invitation | None:
    if not token:
        return None
    return Invitation.objects.select_related("organisation").filter(token_hash=hash_token(token)).first()
