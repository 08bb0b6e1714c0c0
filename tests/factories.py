"""factory_boy factories shared by the whole suite. Each app adds its own
below its heading; keep them valid by default (a factory's product passes
the model's full_clean) and make the unusual explicit with arguments."""

import datetime
import hashlib
import itertools

import factory
from allauth.account.models import EmailAddress
from django.core.files.base import ContentFile
from stdnum.iso7064 import mod_11_10

from accounts.models import KycCase, KycDocument, Membership, Organisation, User

TEST_PASSWORD = "correct horse battery staple"

# Smallest bytes that content sniffing recognises as each accepted type.
PDF_BYTES = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
JPEG_BYTES = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"

_vat_serial = itertools.count(10_000_000)


def valid_vat_id(first_eight: str | None = None) -> str:
    """A German VAT ID with the right MOD 11,10 check digit."""
    digits = first_eight or f"{next(_vat_serial) % 100_000_000:08d}"
    return f"DE{digits}{mod_11_10.calc_check_digit(digits)}"


def invalid_vat_id(first_eight: str = "13669597") -> str:
    """The same, with a wrong check digit."""
    right = int(mod_11_10.calc_check_digit(first_eight))
    return f"DE{first_eight}{(right + 1) % 10}"


# --- accounts -----------------------------------------------------------------------------


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name", locale="de_DE")
    is_active = True

    @factory.post_generation
    def password(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        self.set_password(extracted or TEST_PASSWORD)
        if create:
            self.save(update_fields=["password"])

    @factory.post_generation
    def verified(self, create: bool, extracted: bool | None, **kwargs: object) -> None:
        # allauth's mandatory verification: a user without a verified address
        # can't log in. Pass verified=False for one who hasn't confirmed yet.
        if create:
            EmailAddress.objects.create(
                user=self, email=self.email, primary=True, verified=True if extracted is None else extracted
            )


class KycCaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = KycCase

    status = KycCase.Status.DRAFT


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation
        skip_postgeneration_save = True

    kind = Organisation.Kind.MEMBER
    legal_name = factory.Sequence(lambda n: f"Rechenwerk {n} GmbH")
    legal_form = "GmbH"
    register_court = "Amtsgericht München"
    register_type = Organisation.RegisterType.HRB
    register_number = factory.Sequence(lambda n: str(100000 + n))
    vat_id = factory.LazyFunction(valid_vat_id)
    street = "Leopoldstraße 1"
    postal_code = "80802"
    city = "München"
    state = Organisation.State.BY
    founding_date = datetime.date(2015, 3, 1)
    employees_band = Organisation.EmployeesBand.SMALL
    turnover_band = Organisation.TurnoverBand.UP_TO_10M
    # The KYC case: OrganisationFactory(kyc__status="approved").
    kyc = factory.RelatedFactory(KycCaseFactory, factory_related_name="organisation")


class ObserverFactory(OrganisationFactory):
    kind = Organisation.Kind.OBSERVER
    legal_name = factory.Sequence(lambda n: f"Bundesamt {n}")
    legal_form = "Bundesbehörde"
    register_court = ""
    register_type = ""
    register_number = ""
    vat_id = ""
    employees_band = Organisation.EmployeesBand.LARGE
    turnover_band = ""


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organisation = factory.SubFactory(OrganisationFactory)
    is_owner = False
    is_trader = True
    is_provider = False
    is_viewer = False


class KycDocumentFactory(factory.django.DjangoModelFactory):
    """A stored PDF. Point STORAGES["default"] at a temporary folder first."""

    class Meta:
        model = KycDocument

    case = factory.LazyFunction(lambda: OrganisationFactory().kyc)
    kind = KycDocument.Kind.REGISTER_EXTRACT
    original_name = "handelsregisterauszug.pdf"
    content_type = "application/pdf"
    size = len(PDF_BYTES)
    sha256 = hashlib.sha256(PDF_BYTES).hexdigest()
    file = factory.LazyFunction(lambda: ContentFile(PDF_BYTES, name="document.pdf"))
