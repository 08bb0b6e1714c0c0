"""Writes of the market app, one module per capability:
``catalogue`` (listing, open/close, halt/resume), ``capacity`` (provider sites
and the sell-side capacity check), ``orders`` (submit, cancel, amend, expire)."""

from market.services.capacity import capacity_check, site_capacity_set, site_create, site_update
from market.services.catalogue import (
    gpu_class_save,
    instrument_halt,
    instrument_resume,
    instruments_list_upcoming,
    instruments_open_close,
)
from market.services.orders import (
    SubmitResult,
    order_amend,
    order_cancel,
    order_submit,
    orders_expire,
    orders_submit_batch,
)

__all__ = [
    "SubmitResult",
    "capacity_check",
    "gpu_class_save",
    "instrument_halt",
    "instrument_resume",
    "instruments_list_upcoming",
    "instruments_open_close",
    "order_amend",
    "order_cancel",
    "order_submit",
    "orders_expire",
    "orders_submit_batch",
    "site_capacity_set",
    "site_create",
    "site_update",
]
