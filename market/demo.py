"""Demo products (market rules §1): the five demo GPU classes, then listing.

Call ``seed_market()`` outside any transaction: the listing services are
durable (``transaction.atomic(durable=True)``) and refuse to run inside one.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from market import services
from market.models import DeliveryStandard, GpuClass

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
