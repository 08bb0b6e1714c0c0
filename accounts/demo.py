"""Demo members for ``manage.py seed_demo``: organisations, people, roles and
KYC states, idempotent (a second run finds the same rows and resets the
passwords). Everything here is demo data on ``*.demo.example`` addresses.

GPU sites and capacity (market.demo) and cash funding (clearing.demo) come in
later issues; the seed_demo command calls them after ``seed_accounts()``,
with ``SeedSummary.members`` / ``.operator``, or they look an organisation up
by its key here ("startup", "provider", …) with ``demo_organisation(key)``.
"""

import datetime
import hashlib
import os
from dataclasses import dataclass, field

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from stdnum.iso7064 import mod_11_10

from accounts.models import KycCase, KycDocument, Membership, Organisation, User, years_before

DEFAULT_PASSWORD = "rechenboerse-demo"  # noqa: S105  (documented demo password, overridable by DEMO_PASSWORD)


def demo_password() -> str:
    return os.environ.get("DEMO_PASSWORD") or DEFAULT_PASSWORD


def vat_id(first_eight: str) -> str:
    """A valid German VAT ID from 8 digits: the 9th is the MOD 11,10 check digit."""
    return f"DE{first_eight}{mod_11_10.calc_check_digit(first_eight)}"


@dataclass(frozen=True)
class DemoOrganisation:
    key: str
    legal_name: str
    legal_form: str
    kind: str
    state: str
    city: str
    postal_code: str
    street: str
    founding_date: datetime.date
    employees_band: str
    turnover_band: str
    kyc_status: str
    register_court: str = ""
    register_type: str = ""
    register_number: str = ""
    vat_digits: str = ""


@dataclass(frozen=True)
class DemoUser:
    email: str
    full_name: str
    organisation: str | None = None
    roles: tuple[str, ...] = ()
    staff: bool = False


def _demo_organisations(today: datetime.date) -> list[DemoOrganisation]:
    # Start-ups are dated relative to today, so that they stay start-ups
    # (founded at most 5 years ago) whenever the demo is seeded.
    return [
        DemoOrganisation(
            key="startup", legal_name="Tensorwerk Berlin GmbH", legal_form="GmbH", kind=Organisation.Kind.MEMBER,
            state="DE-BE", city="Berlin", postal_code="10997", street="Schlesische Straße 12",
            founding_date=years_before(today, 2), employees_band=Organisation.EmployeesBand.MICRO,
            turnover_band=Organisation.TurnoverBand.UP_TO_2M, kyc_status=KycCase.Status.APPROVED,
            register_court="Amtsgericht Charlottenburg", register_type="HRB", register_number="251734 B",
            vat_digits="31234567",
        ),
        DemoOrganisation(
            key="startup2", legal_name="Quantenkeller UG (haftungsbeschränkt)", legal_form="UG (haftungsbeschränkt)",
            kind=Organisation.Kind.MEMBER, state="DE-HH", city="Hamburg", postal_code="20457",
            street="Am Sandtorkai 40", founding_date=years_before(today, 1),
            employees_band=Organisation.EmployeesBand.SMALL, turnover_band=Organisation.TurnoverBand.UP_TO_2M,
            kyc_status=KycCase.Status.APPROVED, register_court="Amtsgericht Hamburg", register_type="HRB",
            register_number="187220", vat_digits="32876543",
        ),
        DemoOrganisation(
            key="provider", legal_name="Alpenrechen Rechenzentrum GmbH", legal_form="GmbH",
            kind=Organisation.Kind.MEMBER, state="DE-BY", city="München", postal_code="80807",
            street="Frankfurter Ring 81", founding_date=datetime.date(2012, 4, 2),
            employees_band=Organisation.EmployeesBand.MEDIUM, turnover_band=Organisation.TurnoverBand.UP_TO_50M,
            kyc_status=KycCase.Status.APPROVED, register_court="Amtsgericht München", register_type="HRB",
            register_number="198345", vat_digits="27451890",
        ),
        DemoOrganisation(
            key="provider2", legal_name="Rheinland Compute AG", legal_form="AG", kind=Organisation.Kind.MEMBER,
            state="DE-NW", city="Köln", postal_code="50667", street="Im Mediapark 6",
            founding_date=datetime.date(2009, 10, 15), employees_band=Organisation.EmployeesBand.LARGE,
            turnover_band=Organisation.TurnoverBand.OVER_50M, kyc_status=KycCase.Status.APPROVED,
            register_court="Amtsgericht Köln", register_type="HRB", register_number="66120", vat_digits="21598734",
        ),
        # The demo market makers (market.demo): they quote both sides of the
        # main hours and trade with each other, so the market is never empty.
        DemoOrganisation(
            key="maker", legal_name="Taktgeber Liquidität GmbH", legal_form="GmbH", kind=Organisation.Kind.MEMBER,
            state="DE-HE", city="Frankfurt am Main", postal_code="60325", street="Mainzer Landstraße 50",
            founding_date=datetime.date(2016, 3, 1), employees_band=Organisation.EmployeesBand.SMALL,
            turnover_band=Organisation.TurnoverBand.UP_TO_10M, kyc_status=KycCase.Status.APPROVED,
            register_court="Amtsgericht Frankfurt am Main", register_type="HRB", register_number="104517",
            vat_digits="26547381",
        ),
        DemoOrganisation(
            key="maker2", legal_name="Nordkurs Handel AG", legal_form="AG", kind=Organisation.Kind.MEMBER,
            state="DE-HH", city="Hamburg", postal_code="22767", street="Große Elbstraße 145",
            founding_date=datetime.date(2018, 9, 17), employees_band=Organisation.EmployeesBand.MEDIUM,
            turnover_band=Organisation.TurnoverBand.UP_TO_50M, kyc_status=KycCase.Status.APPROVED,
            register_court="Amtsgericht Hamburg", register_type="HRB", register_number="154879",
            vat_digits="29384756",
        ),
        DemoOrganisation(
            key="ministry", legal_name="Bundesministerium für Digitales und Staatsmodernisierung",
            legal_form="Oberste Bundesbehörde", kind=Organisation.Kind.OBSERVER, state="DE-BE", city="Berlin",
            postal_code="10117", street="Invalidenstraße 44", founding_date=datetime.date(2025, 5, 6),
            employees_band=Organisation.EmployeesBand.LARGE, turnover_band="",
            kyc_status=KycCase.Status.APPROVED,
        ),
        DemoOrganisation(
            key="pending", legal_name="Neuronenfabrik GmbH", legal_form="GmbH", kind=Organisation.Kind.MEMBER,
            state="DE-BW", city="Karlsruhe", postal_code="76131", street="Haid-und-Neu-Straße 7",
            founding_date=years_before(today, 3), employees_band=Organisation.EmployeesBand.SMALL,
            turnover_band=Organisation.TurnoverBand.UP_TO_10M, kyc_status=KycCase.Status.SUBMITTED,
            register_court="Amtsgericht Mannheim", register_type="HRB", register_number="741209",
            vat_digits="34910286",
        ),
    ]


DEMO_USERS: list[DemoUser] = [
    DemoUser("startup@demo.example", "Lena Vogt", "startup", ("owner", "trader")),
    DemoUser("startup2@demo.example", "Jonas Petersen", "startup2", ("owner", "trader")),
    DemoUser("provider@demo.example", "Maximilian Huber", "provider", ("owner", "trader", "provider")),
    DemoUser("provider2@demo.example", "Sophie Wagner", "provider2", ("owner", "trader", "provider")),
    DemoUser("maker@demo.example", "Clara Brenner", "maker", ("owner", "trader", "provider")),
    DemoUser("maker2@demo.example", "Henrik Lund", "maker2", ("owner", "trader", "provider")),
    DemoUser("ministry@demo.example", "Dr. Katrin Albers", "ministry", ("viewer",)),
    DemoUser("operator@demo.example", "Olaf Betrieb", staff=True),
    DemoUser("pending@demo.example", "Emil Brandt", "pending", ("owner", "trader")),
]

# A minimal valid PDF, so that the pending case has documents to review.
_DEMO_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


@dataclass
class SeedSummary:
    organisations: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    password: str = ""
    # For the other apps' demo data: the member organisations (not the
    # observer), e.g. to fund them, and the demo operator.
    members: list[Organisation] = field(default_factory=list)
    operator: User | None = None


def demo_organisation_name(key: str) -> str:
    """The legal name of the demo organisation seeded under ``key``."""
    return {org.key: org.legal_name for org in _demo_organisations(timezone.localdate())}[key]


def demo_organisation(key: str) -> Organisation:
    """The demo organisation seeded under ``key`` (for the other apps' demo data)."""
    return Organisation.objects.get(legal_name=demo_organisation_name(key))


def _seed_documents(case: KycCase, uploaded_by: User) -> None:
    if case.documents.exists():
        return
    for kind, name in (
        (KycDocument.Kind.REGISTER_EXTRACT, "handelsregisterauszug.pdf"),
        (KycDocument.Kind.REPRESENTATIVE_ID, "personalausweis-geschaeftsfuehrer.pdf"),
    ):
        document = KycDocument(
            case=case, kind=kind, original_name=name, content_type="application/pdf", size=len(_DEMO_PDF),
            sha256=hashlib.sha256(_DEMO_PDF).hexdigest(), uploaded_by=uploaded_by,
        )
        document.file.save(name, ContentFile(_DEMO_PDF), save=False)
        document.save()


@transaction.atomic
def seed_accounts() -> SeedSummary:
    """Create or update the demo members. Safe to run again: rows are found by
    their natural keys (legal name, e-mail) and brought back to the demo state."""
    today = timezone.localdate()
    now = timezone.now()
    password = demo_password()
    summary = SeedSummary(password=password)
    organisations: dict[str, Organisation] = {}
    for spec in _demo_organisations(today):
        organisation, _created = Organisation.objects.update_or_create(
            legal_name=spec.legal_name,
            defaults={
                "kind": spec.kind,
                "legal_form": spec.legal_form,
                "register_court": spec.register_court,
                "register_type": spec.register_type,
                "register_number": spec.register_number,
                "vat_id": vat_id(spec.vat_digits) if spec.vat_digits else "",
                "street": spec.street,
                "postal_code": spec.postal_code,
                "city": spec.city,
                "state": spec.state,
                "founding_date": spec.founding_date,
                "employees_band": spec.employees_band,
                "turnover_band": spec.turnover_band,
            },
        )
        organisation.full_clean(validate_constraints=False)
        organisations[spec.key] = organisation
        summary.organisations.append(f"{organisation.legal_name} ({spec.kind}, {spec.state}, KYC {spec.kyc_status})")

    users: dict[str, User] = {}
    for spec_user in DEMO_USERS:
        user, _created = User.objects.update_or_create(
            email=spec_user.email,
            defaults={
                "full_name": spec_user.full_name,
                "is_active": True,
                "is_staff": spec_user.staff,
                "is_superuser": spec_user.staff,
            },
        )
        user.set_password(password)
        user.save(update_fields=["password"])
        EmailAddress.objects.update_or_create(
            user=user, email=spec_user.email, defaults={"verified": True, "primary": True}
        )
        # MFA off for the demo: the logins must work with the password alone.
        Authenticator.objects.filter(user=user).delete()
        users[spec_user.email] = user
        if spec_user.organisation:
            flags = {f"is_{role}": role in spec_user.roles for role in ("owner", "trader", "provider", "viewer")}
            Membership.objects.update_or_create(
                user=user, defaults={"organisation": organisations[spec_user.organisation], **flags}
            )
        else:
            Membership.objects.filter(user=user).delete()
        role_text = "+".join(spec_user.roles) if spec_user.roles else ("operator" if spec_user.staff else "-")
        summary.users.append(f"{spec_user.email} ({role_text})")

    operator = users["operator@demo.example"]
    summary.operator = operator
    summary.members = [org for org in organisations.values() if org.kind == Organisation.Kind.MEMBER]
    first_owner = {spec.organisation: users[spec.email] for spec in reversed(DEMO_USERS) if spec.organisation}
    for spec in _demo_organisations(today):
        organisation = organisations[spec.key]
        approved = spec.kyc_status == KycCase.Status.APPROVED
        # Timestamps of the first run are kept, so a second run changes nothing.
        case, _created = KycCase.objects.get_or_create(organisation=organisation)
        case.status = spec.kyc_status
        case.submitted_at = case.submitted_at or now
        case.decided_at = (case.decided_at or now) if approved else None
        case.decided_by = operator if approved else None
        case.reason = ""
        case.save()
        if spec.kind == Organisation.Kind.OBSERVER:
            continue  # an authority has no register extract; its operator set it up
        _seed_documents(case, first_owner[spec.key])
    return summary
