"""Small helpers of the accounts tests."""

from pathlib import Path

from accounts.models import KycCase, Organisation


def stored_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def approve(organisation: Organisation) -> None:
    KycCase.objects.filter(organisation=organisation).update(status=KycCase.Status.APPROVED)
