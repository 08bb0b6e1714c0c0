"""The production switch, checked in a fresh interpreter per case (settings are
read once per process)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    unset = {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "PRODUCTION", "SITE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE", "DEMO",
             *ISSUER_AND_BANK_ENV}
    base = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(  # noqa: S603 - our own manage.py with fixed arguments
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
        capture_output=True, text=True, timeout=120, check=False,
    )


def good_production_env() -> dict[str, str]:
    return {"PRODUCTION": "1", "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "rechenboerse.example",
            "SITE_URL": "https://rechenboerse.example", **ISSUER_AND_BANK_ENV}


# Production issues invoices and tells members where to pay: it needs the real details.
ISSUER_AND_BANK_ENV = {
    "INVOICE_ISSUER_NAME": "Rechenbörse Betriebs-GmbH", "INVOICE_ISSUER_STREET": "Am Sandtorkai 1",
    "INVOICE_ISSUER_POSTAL_CODE": "20457", "INVOICE_ISSUER_CITY": "Hamburg",
    "INVOICE_ISSUER_VAT_ID": "DE136695976", "INVOICE_ISSUER_REGISTER": "Amtsgericht Hamburg HRB 123456",
    "CLEARING_BANK_HOLDER": "Rechenbörse Clearing GmbH", "CLEARING_BANK_IBAN": "DE89370400440532013000",
    "CLEARING_BANK_BIC": "COBADEFFXXX", "CLEARING_BANK_NAME": "Commerzbank",
}


def test_check_deploy_is_clean_in_production():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **good_production_env())

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"SECRET_KEY": ""}, "needs SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "needs SECRET_KEY"),
        ({"ALLOWED_HOSTS": ""}, "needs ALLOWED_HOSTS"),
        ({"DEBUG": "1"}, "refuses to start with DEBUG on"),
        ({"SITE_URL": ""}, "needs SITE_URL"),
        ({"INVOICE_ISSUER_VAT_ID": ""}, "Invoicing needs INVOICE_ISSUER_VAT_ID"),
        ({"CLEARING_BANK_IBAN": ""}, "Paying in needs CLEARING_BANK_IBAN"),
    ],
)
def test_production_refuses_to_start_when_unsafe(override, message):
    result = manage("check", **{**good_production_env(), **override})

    assert result.returncode != 0
    assert message in result.stderr


def test_a_bad_boolean_fails_fast():
    result = manage("check", PRODUCTION="maybe")

    assert result.returncode != 0
    assert "PRODUCTION must be a boolean" in result.stderr


SHOW_DEMO = ("from django.conf import settings as s; "
             "print(s.DEMO, s.INVOICE_ISSUER['demo_data'], s.INVOICE_ISSUER['name'], s.CLEARING_BANK['iban'])")


def test_demo_mode_is_on_outside_production_with_marked_demo_details():
    result = manage("shell", "--no-imports", "-c", SHOW_DEMO)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "Rechenbörse", "GmbH", "DE02120300000000202051"]


def test_production_is_not_demo_mode_and_uses_the_given_details():
    result = manage("shell", "--no-imports", "-c", SHOW_DEMO, **good_production_env())

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "Rechenbörse", "Betriebs-GmbH", "DE89370400440532013000"]


def test_a_hosted_demo_may_run_in_production_mode_with_demo_data():
    env = {key: value for key, value in good_production_env().items() if key not in ISSUER_AND_BANK_ENV}
    result = manage("shell", "--no-imports", "-c", SHOW_DEMO, DEMO="1", **env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["True", "True"]
