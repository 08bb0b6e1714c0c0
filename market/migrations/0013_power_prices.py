"""Hourly electricity prices (issue 11) and each GPU class's power draw,
filled for the known classes: the maker's server power divided by its GPUs
(DGX H100/H200 10.2 kW, DGX B200 14.3 kW, DGX A100 6.5 kW for 8 GPUs; an
8 x L40S server about 4.4 kW). Other classes keep 1.000 kW until an
operator sets theirs."""

import django.core.validators
from decimal import Decimal
from django.db import migrations, models


POWER_DRAW_KW = {"H100": "1.275", "H200": "1.275", "B200": "1.788", "A100": "0.813", "L40S": "0.550"}


def fill_power_draw(apps, schema_editor):  # type: ignore[no-untyped-def]
    GpuClass = apps.get_model("market", "GpuClass")
    for code, kw in POWER_DRAW_KW.items():
        GpuClass.objects.filter(code=code).update(power_draw_kw=Decimal(kw))


class Migration(migrations.Migration):

    dependencies = [
        ('market', '0012_trade_aggregates'),
    ]

    operations = [
        migrations.AddField(
            model_name='gpuclass',
            name='power_draw_kw',
            field=models.DecimalField(decimal_places=3, default=Decimal('1.000'), help_text='Electrical power of one GPU under load with its share of the server (CPU, memory, network), before cooling; e.g. 1.275 for an H100 SXM in an 8-GPU server of 10.2 kW.', max_digits=6, validators=[django.core.validators.MinValueValidator(Decimal('0.001'))], verbose_name='power draw (kW per GPU)'),
        ),
        migrations.CreateModel(
            name='PowerPrice',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('zone', models.CharField(default='DE-LU', max_length=8, verbose_name='bidding zone')),
                ('hour_start', models.DateTimeField(verbose_name='hour (start, UTC)')),
                ('price', models.DecimalField(decimal_places=2, max_digits=9, verbose_name='price (EUR/MWh)')),
                ('source', models.CharField(blank=True, max_length=100, verbose_name='source')),
                ('is_demo', models.BooleanField(default=False, verbose_name='demo data')),
                ('imported_at', models.DateTimeField(verbose_name='imported at')),
            ],
            options={
                'verbose_name': 'electricity price',
                'verbose_name_plural': 'electricity prices',
                'ordering': ['-hour_start'],
                'constraints': [models.UniqueConstraint(fields=('zone', 'hour_start'), name='powerprice_unique_hour')],
            },
        ),
        migrations.RunPython(fill_power_draw, migrations.RunPython.noop),
    ]
