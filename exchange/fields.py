"""Serializer fields shared by the apps' APIs."""

from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time that must carry its offset, as the contract says.

    DRF would read "2026-12-04T10:00:00" in the server's time zone; a client
    in another zone (or one that forgot the offset) would then get an order
    that expires an hour or more away from what it meant. Refused instead,
    with ``invalid`` at the field.
    """

    default_error_messages = {
        "naive": _("Give the time with its offset (ISO 8601), e.g. 2026-12-04T10:00:00+01:00 or "
                   "2026-12-04T09:00:00Z."),
    }

    def enforce_timezone(self, value: datetime) -> datetime:
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)
