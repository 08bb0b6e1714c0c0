"""Member screens: create an organisation, its page (KYC, documents,
members, invitations), accepting an invitation, and the protected download
of KYC documents. Every write goes through ``accounts.services``."""

import logging
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors, services
from accounts.forms import InvitationForm, KycDocumentForm, OrganisationForm
from accounts.models import KycCase, KycDocument, Membership, User
from clearing.payin import payin_instructions
from exchange.errors import ExchangeError, add_error_to_form

logger = logging.getLogger(__name__)


class AuthedRequest(HttpRequest):
    """What the views below see: login_required guarantees a User."""

    user: User


def _detail_context(
    request: HttpRequest,
    membership: Membership,
    *,
    upload_form: KycDocumentForm | None = None,
    invite_form: InvitationForm | None = None,
) -> dict[str, Any]:
    organisation = membership.organisation
    case, _created = KycCase.objects.get_or_create(organisation=organisation)
    documents = list(selectors.organisation_documents(organisation=organisation)) if membership.is_owner else []
    present = {document.kind for document in documents}
    return {
        "membership": membership,
        "organisation": organisation,
        "case": case,
        "documents": documents,
        "missing_kinds": [KycDocument.Kind(kind).label for kind in KycDocument.REQUIRED_KINDS if kind not in present],
        "members": selectors.organisation_members(organisation=organisation),
        "invitations": selectors.organisation_open_invitations(organisation=organisation)
        if membership.is_owner
        else [],
        "can_edit_kyc": membership.is_owner and case.is_editable,
        "upload_form": upload_form or KycDocumentForm(),
        "invite_form": invite_form or InvitationForm(observer=organisation.is_observer),
        "payin": payin_instructions(organisation),
    }


def _membership_or_redirect(request: HttpRequest) -> Membership | HttpResponse:
    membership = selectors.membership_for(request.user)
    if membership is None:
        messages.info(request, _("You don't belong to an organisation yet. Register yours here."))
        return redirect("organisation_create")
    return membership


@login_required
@require_http_methods(["GET", "POST"])
def organisation_create(request: AuthedRequest) -> HttpResponse:
    if selectors.membership_for(request.user) is not None:
        messages.info(request, _("You already belong to an organisation."))
        return redirect("organisation_detail")
    form = OrganisationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = {name: form.cleaned_data[name] for name in OrganisationForm.Meta.fields}
        try:
            services.organisation_create(user=request.user, **data)
        except ExchangeError as error:
            add_error_to_form(form, error)
        else:
            messages.success(
                request,
                _("Your organisation is registered. Upload the KYC documents and submit them for review."),
            )
            return redirect("organisation_detail")
    status = 400 if form.errors else 200
    return render(request, "accounts/organisation_create.html", {"form": form}, status=status)


@login_required
@require_GET
def organisation_detail(request: AuthedRequest) -> HttpResponse:
    found = _membership_or_redirect(request)
    if isinstance(found, HttpResponse):
        return found
    return render(request, "accounts/organisation_detail.html", _detail_context(request, found))


@login_required
@require_POST
def kyc_document_upload(request: AuthedRequest) -> HttpResponse:
    found = _membership_or_redirect(request)
    if isinstance(found, HttpResponse):
        return found
    form = KycDocumentForm(request.POST, request.FILES)
    status = 400
    if form.is_valid():
        try:
            services.kyc_document_add(
                user=request.user,
                organisation=found.organisation,
                kind=form.cleaned_data["kind"],
                upload=form.cleaned_data["file"],
            )
        except ExchangeError as error:
            add_error_to_form(form, error)
            status = error.status
        else:
            messages.success(request, _("The document is uploaded."))
            return redirect("organisation_detail")
    context = _detail_context(request, found, upload_form=form)
    return render(request, "accounts/organisation_detail.html", context, status=status)


@login_required
@require_POST
def kyc_submit(request: AuthedRequest) -> HttpResponse:
    found = _membership_or_redirect(request)
    if isinstance(found, HttpResponse):
        return found
    try:
        services.kyc_submit(user=request.user, organisation=found.organisation)
    except ExchangeError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, _("Thank you. An operator will review your documents."))
    return redirect("organisation_detail")


@login_required
@require_POST
def invitation_create(request: AuthedRequest) -> HttpResponse:
    found = _membership_or_redirect(request)
    if isinstance(found, HttpResponse):
        return found
    form = InvitationForm(request.POST, observer=found.organisation.is_observer)
    status = 400
    if form.is_valid():
        try:
            invitation, _token = services.membership_invite(
                inviter=request.user, email=form.cleaned_data["email"], **form.role_flags()
            )
        except ExchangeError as error:
            add_error_to_form(form, error)
            status = error.status
        else:
            messages.success(request, _("Invitation sent to %(email)s.") % {"email": invitation.email})
            return redirect("organisation_detail")
    context = _detail_context(request, found, invite_form=form)
    return render(request, "accounts/organisation_detail.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def invitation_accept(request: AuthedRequest, token: str) -> HttpResponse:
    invitation = selectors.invitation_by_token(token=token)
    if invitation is None:
        raise Http404
    error: ExchangeError | None = None
    if request.method == "POST":
        try:
            services.invitation_accept(user=request.user, token=token)
        except ExchangeError as refused:
            error = refused
        else:
            messages.success(
                request,
                _("Welcome to %(organisation)s.") % {"organisation": invitation.organisation.legal_name},
            )
            return redirect("organisation_detail")
    context = {
        "invitation": invitation,
        "roles": [services.role_label(role) for role in invitation.roles],
        "error": error,
        "email_matches": invitation.email.lower() == request.user.email.lower(),
        "already_member": selectors.membership_for(request.user) is not None,
    }
    return render(request, "accounts/invitation_accept.html", context, status=error.status if error else 200)


@never_cache
@login_required
@require_GET
def kyc_document_download(request: AuthedRequest, pk: int) -> FileResponse:
    # Owners of the organisation and operators only; to anyone else the
    # document does not exist (404, as for a made-up id), never 403.
    document = selectors.kyc_document_for_download(user=request.user, pk=pk)
    if document is None:
        raise Http404
    try:
        handle = document.file.open("rb")
    except FileNotFoundError:
        logger.error("KYC document %s is missing from storage (%s)", document.pk, document.file.name)
        raise Http404 from None
    return FileResponse(
        handle,
        as_attachment=True,
        filename=document.original_name,
        content_type=document.content_type,
    )
