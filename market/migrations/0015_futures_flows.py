# Daily futures flows (issue 11): open interest reads these instead of every futures trade.

import django.db.models.deletion
from django.db import migrations, models

# The days aggregated before this table existed get their flows from their trades here (the beat
# writes a day's flows only with the day itself and never rewrites a day it has written). The same
# grouping as market.services.aggregates: a trade belongs to its Berlin day. Python rather than SQL:
# the embedded SQLite default has no AT TIME ZONE.
def backfill(apps, schema_editor):
    from collections import defaultdict
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    AggregateDay = apps.get_model("market", "AggregateDay")
    FuturesFlowDay = apps.get_model("market", "FuturesFlowDay")
    Trade = apps.get_model("market", "Trade")
    done = set(AggregateDay.objects.values_list("date", flat=True))
    if not done:
        return
    net = defaultdict(int)
    for executed_at, instrument_id, buyer_id, seller_id, quantity in (
            Trade.objects.filter(instrument__segment="futures")
            .values_list("executed_at", "instrument_id", "buyer_id", "seller_id", "quantity").iterator()):
        day = executed_at.astimezone(berlin).date()
        if day in done:
            net[day, instrument_id, buyer_id] += quantity
            net[day, instrument_id, seller_id] -= quantity
    FuturesFlowDay.objects.bulk_create(
        [FuturesFlowDay(date=day, instrument_id=instrument_id, organisation_id=organisation_id, quantity=quantity)
         for (day, instrument_id, organisation_id), quantity in net.items() if quantity], batch_size=2000)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_auditlog_append_only'),
        ('market', '0013_power_prices'),
    ]

    operations = [
        migrations.CreateModel(
            name='FuturesFlowDay',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('date', models.DateField(verbose_name='day')),
                ('quantity', models.BigIntegerField(verbose_name='net contracts bought')),
                ('instrument', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='market.instrument', verbose_name='instrument')),
                ('organisation', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.organisation', verbose_name='organisation')),
            ],
            options={
                'verbose_name': 'daily futures flow',
                'verbose_name_plural': 'daily futures flows',
                'constraints': [models.UniqueConstraint(fields=('date', 'instrument', 'organisation'), name='futuresflowday_unique')],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
