"""Demo products (market rules §1): the five demo GPU classes, then listing;
and the demo providers' sites and capacity (``seed_sites``).

Call ``seed_market()`` outside any transaction: the listing services are
durable (``transaction.atomic(durable=True)``) and refuse to run inside one.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.demo import demo_organisation
from accounts.models import Organisation
from market import services
from market.models import DeliveryStandard, EnergySource, GpuClass, Site, SiteCapacity

# Benchmark: the sustained dense BF16 GEMM throughput a delivered GPU must
# reach in the exchange's acceptance test (below the data-sheet peak).
BENCHMARK_UNIT = "TFLOPS BF16 dense GEMM"

DEMO_CLASSES = [
    {"code": "H100", "name": "NVIDIA H100 SXM5 80 GB", "memory_gb": 80,
     "interconnect": "NVLink 4 (900 GB/s), InfiniBand NDR 400 Gb/s",
     "min_benchmark_value": Decimal("700"), "delivery_standard": DeliveryStandard.BARE_METAL},
    {"code": "H200", "name": "NVIDIA H200 SXM 141 GB", "memory_gb": 141,
     "interconnect": "NVLink 4 (900 GB/s), InfiniBand NDR 400 Gb/s",
     "min_benchmark_value": Decimal("720"), "delivery_standard": DeliveryStandard.BARE_METAL},
    {"code": "B200", "name": "NVIDIA B200 SXM 180 GB", "memory_gb": 180,
     "interconnect": "NVLink 5 (1.8 TB/s), InfiniBand NDR 400 Gb/s",
     "min_benchmark_value": Decimal("1500"), "delivery_standard": DeliveryStandard.BARE_METAL},
    {"code": "A100", "name": "NVIDIA A100 SXM4 80 GB", "memory_gb": 80,
     "interconnect": "NVLink 3 (600 GB/s), InfiniBand HDR 200 Gb/s",
     "min_benchmark_value": Decimal("250"), "delivery_standard": DeliveryStandard.BARE_METAL},
    {"code": "L40S", "name": "NVIDIA L40S 48 GB", "memory_gb": 48,
     "interconnect": "PCIe 4.0 x16, Ethernet 100 Gb/s",
     "min_benchmark_value": Decimal("250"), "delivery_standard": DeliveryStandard.VM_ROOT},
]


@dataclass(frozen=True)
class SeedResult:
    classes_created: int
    instruments_listed: int
    opened: int
    closed: int


def seed_market(*, now: datetime | None = None) -> SeedResult:
    """Create the demo GPU classes (keeping any operator edits) and list
    their instruments. Idempotent."""
    created = 0
    for spec in DEMO_CLASSES:
        _obj, was_created = GpuClass.objects.get_or_create(
            code=spec["code"], defaults={**spec, "min_benchmark_unit": BENCHMARK_UNIT})
        created += was_created
    now = now or timezone.now()
    listed = services.instruments_list_upcoming(now=now)
    opened, closed = services.instruments_open_close(now=now)
    return SeedResult(classes_created=created, instruments_listed=listed, opened=opened, closed=closed)


# --- provider sites ----------------------------------------------------------------------

# (organisation key in accounts.demo, site name, state, energy source, PUE, {class: GPUs})
DEMO_SITES: list[tuple[str, str, str, str, Decimal, dict[str, int]]] = [
    ("provider", "RZ München-Freimann", "DE-BY", EnergySource.RENEWABLE, Decimal("1.18"), {"H100": 384, "H200": 256}),
    ("provider", "RZ Nürnberg-Hafen", "DE-BY", EnergySource.GRID_MIX, Decimal("1.35"), {"H100": 128}),
    ("provider2", "RZ Köln-Ossendorf", "DE-NW", EnergySource.OWN_GENERATION, Decimal("1.25"),
     {"H100": 256, "A100": 128}),
]


@dataclass(frozen=True)
class SitesSeedResult:
    sites: list[str]
    created: int


@transaction.atomic
def seed_sites(organisations: Mapping[str, Organisation] | None = None) -> SitesSeedResult:
    """The demo providers' sites and GPUs (after ``seed_accounts`` and
    ``seed_market``): Alpenrechen (DE-BY) 512 H100 and 256 H200 over two
    sites, Rheinland Compute (DE-NW) 256 H100 and 128 A100. Idempotent: sites
    are found by (organisation, name) and brought back to the demo figures;
    classes a demo site should not have are removed from it. Written directly,
    like the rest of the demo data (no audit entries for fixtures)."""
    organisations = organisations or {key: demo_organisation(key) for key in {spec[0] for spec in DEMO_SITES}}
    classes = {gpu_class.code: gpu_class for gpu_class in GpuClass.objects.all()}
    lines, created = [], 0
    for key, name, state, energy_source, pue, gpus in DEMO_SITES:
        organisation = organisations[key]
        site, was_created = Site.objects.update_or_create(
            organisation=organisation, name=name,
            defaults={"state": state, "energy_source": energy_source, "pue": pue},
        )
        created += was_created
        for code, count in gpus.items():
            SiteCapacity.objects.update_or_create(site=site, gpu_class=classes[code], defaults={"gpus": count})
        site.capacities.exclude(gpu_class__code__in=list(gpus)).delete()
        summary = ", ".join(f"{count} {code}" for code, count in gpus.items())
        lines.append(f"{organisation.legal_name}: {name} ({state}) {summary}")
    return SitesSeedResult(sites=lines, created=created)
