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
    unset = {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "PRODUCTION", "SITE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    base = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(  # noqa: S603 - our own manage.py with fixed arguments
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
        capture_output=True, text=True, timeout=120, check=False,
    )


def good_production_env() -> dict[str, str]:
    return {"PRODUCTION": "1", "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "rechenboerse.example",
            "SITE_URL": "https://rechenboerse.example"}


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
