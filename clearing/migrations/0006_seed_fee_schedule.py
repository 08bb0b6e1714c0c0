"""Seed the market rules' fee schedule, valid from 2026-01-01 00:00 Europe/Berlin.

The same values as ``clearing.fees.DEFAULT_FEE_TERMS`` (copied, not imported:
a migration must not change when the code does).
"""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import migrations

VALID_FROM = datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/Berlin"))


def seed(apps, schema_editor):
    FeeSchedule = apps.get_model("clearing", "FeeSchedule")
    FeeSchedule.objects.get_or_create(
        valid_from=VALID_FROM,
        defaults={
            "day_ahead_per_side": Decimal("0.01"),
            "intraday_maker": Decimal("0.005"),
            "intraday_taker": Decimal("0.015"),
            "futures_per_side": Decimal("0.002"),
            "incentive_fund_share": Decimal("0.20"),
            "rnd_fund_share": Decimal("0.10"),
            "note": "Market rules v1 (seed)",
        },
    )


class Migration(migrations.Migration):
    dependencies = [("clearing", "0005_fees_withdrawals")]

    # The seed row is in effect at once and immutable from then on: no reverse.
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
