"""Forms of the member screens and the operator's KYC decision. They check
the shape of the input; the rules are the services' (errors come back
through ``exchange.errors.add_error_to_form`` and show at the field)."""

from typing import Any, ClassVar

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import KycDocument, Organisation, normalize_register_number, normalize_vat_id
from accounts.selectors import organisation_taken_fields


class OrganisationForm(forms.ModelForm):
    # Wider than the stored 11 characters: people type "DE 136 695 976".
    vat_id = forms.CharField(
        label=Organisation._meta.get_field("vat_id").verbose_name,
        help_text=Organisation._meta.get_field("vat_id").help_text,
        max_length=20,
        widget=forms.TextInput(attrs={"placeholder": "DE123456789", "autocomplete": "off"}),
    )

    class Meta:
        model = Organisation
        fields: ClassVar[list[str]] = [
            "legal_name", "legal_form", "register_court", "register_type", "register_number", "vat_id",
            "street", "postal_code", "city", "state", "founding_date", "employees_band", "turnover_band",
        ]
        widgets: ClassVar[dict[str, Any]] = {
            "founding_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "postal_code": forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "postal-code"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A member organisation fills in every KYC field (observers are set up
        # by operators in the admin, where these stay optional).
        for name in Organisation.MEMBER_REQUIRED_FIELDS:
            self.fields[name].required = True

    def clean_vat_id(self) -> str:
        return normalize_vat_id(self.cleaned_data["vat_id"])

    def clean_register_number(self) -> str:
        return normalize_register_number(self.cleaned_data["register_number"])
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # The same check as organisation_create's, here so that the field is
        # named before the model's constraint check would say "constraint
        # violated" above the form (fields with errors are left out of it).
        taken = organisation_taken_fields(
            vat_id=cleaned.get("vat_id") or "",
            register_court=(cleaned.get("register_court") or "").strip(),
            register_type=cleaned.get("register_type") or "",
            register_number=cleaned.get("register_number") or "",
        )
        for name, messages in taken.items():
            for message in messages:
                self.add_error(name, message)
        return cleaned


class KycDocumentForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind of document"), choices=KycDocument.Kind.choices)
    file = forms.FileField(
        label=_("File"),
        help_text=_("PDF, PNG or JPEG, at most 10 MB."),
        widget=forms.ClearableFileInput(attrs={"accept": "application/pdf,image/png,image/jpeg"}),
    )


ROLE_CHOICES = [
    ("owner", _("Owner – manages the organisation, its documents and members")),
    ("trader", _("Trader – places orders and bids")),
    ("provider", _("Provider – manages sites and capacity")),
    ("viewer", _("Viewer – reads, never acts")),
]


class InvitationForm(forms.Form):
    email = forms.EmailField(label=_("E-mail address of your colleague"))
    roles = forms.MultipleChoiceField(
        label=_("Roles"),
        choices=ROLE_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        initial=["trader"],
    )

    def __init__(self, *args: Any, observer: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if observer:
            roles: Any = self.fields["roles"]
            roles.choices = [choice for choice in ROLE_CHOICES if choice[0] in ("owner", "viewer")]
            roles.initial = ["viewer"]

    def role_flags(self) -> dict[str, bool]:
        roles = set(self.cleaned_data.get("roles") or [])
        return {f"is_{role}": role in roles for role in ("owner", "trader", "provider", "viewer")}


class KycDecisionForm(forms.Form):
    DECISIONS: ClassVar[list[tuple[str, Any]]] = [
        ("approve", _("Approve")),
        ("needs_info", _("Ask for more information")),
        ("reject", _("Reject")),
    ]

    decision = forms.ChoiceField(label=_("Decision"), choices=DECISIONS, widget=forms.RadioSelect)
    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=_("Required to reject or to ask for more information; the owners receive it by e-mail."),
    )


class KycReasonForm(forms.Form):
    """The reason asked on the intermediate page of the admin's bulk actions."""

    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=_("Required to reject or to ask for more information; the owners receive it by e-mail."),
    )
