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
