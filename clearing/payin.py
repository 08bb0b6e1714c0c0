"""Paying in: the clearing house's bank account (``settings.CLEARING_BANK``)
and each member's payment reference (docs/architecture.md, "Paying in").

A member transfers euros to the clearing house's account and writes its
payment reference in the transfer's remittance information
("Verwendungszweck"). An operator books the deposit in admin with the
bank's own reference of the transfer (``CashDeposit.bank_reference``, unique
per transfer) for the organisation the payment reference names. The
reference is the organisation's number with an ISO 7064 MOD 11,10 check
digit (the one of German VAT IDs), so a mistyped reference does not name
another member.
"""

import re
from dataclasses import dataclass

from django.conf import settings
from stdnum.iso7064 import mod_11_10

from accounts.models import KycCase, Organisation

PREFIX = "RBE"
_REFERENCE = re.compile(rf"^{PREFIX}-?(?P<number>[0-9]{{6,}})-?(?P<check>[0-9])$")


def payment_reference(organisation: Organisation) -> str:
    """``RBE-000042-7``: what the member writes on every transfer to the exchange."""
    number = f"{organisation.pk:06d}"
    return f"{PREFIX}-{number}-{mod_11_10.calc_check_digit(number)}"


def organisation_id_from_reference(text: str) -> int | None:
    """The organisation a payment reference names, or None if it is not one
    (wrong form or check digit). Spaces and case do not matter."""
    match = _REFERENCE.match(re.sub(r"\s+", "", text or "").upper())
    if match is None or mod_11_10.calc_check_digit(match["number"]) != match["check"]:
        return None
    return int(match["number"])


def _iban_groups(iban: str) -> str:
    compact = iban.replace(" ", "")
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


@dataclass(frozen=True)
class PayIn:
    holder: str
    iban: str
    bic: str
    bank: str
    reference: str
    demo_data: bool


def payin_instructions(organisation: Organisation) -> PayIn | None:
    """Where and how ``organisation`` pays in; None for one that holds no
    cash (an observer) or may not trade yet (KYC not approved)."""
    if organisation.is_observer or not KycCase.objects.filter(
            organisation=organisation, status=KycCase.Status.APPROVED).exists():
        return None
    bank = settings.CLEARING_BANK
    return PayIn(holder=str(bank["holder"]), iban=_iban_groups(str(bank["iban"])), bic=str(bank["bic"]),
                 bank=str(bank["bank"]), reference=payment_reference(organisation),
                 demo_data=bool(bank["demo_data"]))
