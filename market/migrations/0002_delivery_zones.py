"""The delivery zones are fixed by the market rules (§1): DE and the 16
federal states by ISO 3166-2. The list is frozen here rather than imported,
so that this migration means the same thing forever."""

from django.db import migrations

ZONES = [
    ("DE", "Deutschland"),
    ("DE-BW", "Baden-Württemberg"),
    ("DE-BY", "Bayern"),
    ("DE-BE", "Berlin"),
    ("DE-BB", "Brandenburg"),
    ("DE-HB", "Bremen"),
    ("DE-HH", "Hamburg"),
    ("DE-HE", "Hessen"),
    ("DE-MV", "Mecklenburg-Vorpommern"),
    ("DE-NI", "Niedersachsen"),
    ("DE-NW", "Nordrhein-Westfalen"),
    ("DE-RP", "Rheinland-Pfalz"),
    ("DE-SL", "Saarland"),
    ("DE-SN", "Sachsen"),
    ("DE-ST", "Sachsen-Anhalt"),
    ("DE-SH", "Schleswig-Holstein"),
    ("DE-TH", "Thüringen"),
]


def seed(apps, schema_editor):
    DeliveryZone = apps.get_model("market", "DeliveryZone")
    for code, name in ZONES:
        DeliveryZone.objects.update_or_create(code=code, defaults={"name": name})


def unseed(apps, schema_editor):
    DeliveryZone = apps.get_model("market", "DeliveryZone")
    DeliveryZone.objects.filter(code__in=[code for code, _ in ZONES], instruments__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("market", "0001_catalogue")]

    operations = [migrations.RunPython(seed, unseed)]
