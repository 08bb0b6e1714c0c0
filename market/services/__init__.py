"""Writes of the market app, one module per capability:
``catalogue`` (listing, open/close, halt/resume), ``capacity`` (provider sites
and the sell-side capacity check), ``orders`` (submit, cancel, amend, expire)."""

from market.services.catalogue import (
    gpu_class_save,
    instrument_halt,
    instrument_resume,
    instruments_list_upcoming,
    instruments_open_close,
)

__all__ = [
    "gpu_class_save",
    "instrument_halt",
    "instrument_resume",
    "instruments_list_upcoming",
    "instruments_open_close",
]

# --- capacity: provider sites and the sell-side capacity check. Appended per
# capability so that parallel edits of this file don't collide.
from market.services.capacity import capacity_check, site_capacity_set, site_create, site_update  # noqa: E402

__all__ += ["capacity_check", "site_capacity_set", "site_create", "site_update"]

# --- orders: submit, cancel, amend, expire (issue 3).
from market.services.orders import (  # noqa: E402
    SubmitResult,
    order_amend,
    order_cancel,
    order_submit,
    orders_expire,
    orders_submit_batch,
)

__all__ += ["SubmitResult", "order_amend", "order_cancel", "order_submit", "orders_expire", "orders_submit_batch"]
