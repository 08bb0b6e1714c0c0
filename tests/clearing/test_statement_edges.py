"""Hardening (issue 7, item 10): statement days at the edge of the calendar
are 404, not a 500 (0001-01-01's local midnight lies in year 0 in UTC, and
9999-12-31 has no next day). The days just inside still work."""

import pytest
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db

EDGES = ["0001-01-01", "9999-12-31"]


@pytest.mark.parametrize("day", EDGES)
@pytest.mark.parametrize("template", ["/statements/{}/", "/statements/{}.csv", "/statements/?day={}",
                                      "/statements/{}/?format=csv"])
def test_members_get_404_for_the_first_and_last_day_of_the_calendar(client, alice, template, day):
    client.force_login(alice)
    client.raise_request_exception = False
    assert client.get(template.format(day)).status_code == 404


@pytest.mark.parametrize("day", EDGES)
@pytest.mark.parametrize("suffix", ["", "&format=csv"])
def test_operators_get_404_for_them_in_the_admin(client, alice_org, day, suffix):
    client.force_login(User.objects.create_superuser(email="root@edges.test", password="x" * 12))
    client.raise_request_exception = False
    url = reverse("admin:clearing_statementorganisation_statement", args=[alice_org.pk])
    assert client.get(f"{url}?day={day}{suffix}").status_code == 404


@pytest.mark.parametrize("day", ["0001-01-02", "9999-12-30"])
def test_the_days_just_inside_the_calendar_are_empty_statements(client, alice, day):
    client.force_login(alice)
    page = client.get(f"/statements/{day}/")
    assert page.status_code == 200
    assert page.context["statement"].lines == []
    assert client.get(f"/statements/{day}.csv").status_code == 200
