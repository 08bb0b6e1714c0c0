"""Reads of the market app, one module per capability (see market.services)."""

from market.selectors.catalogue import InstrumentFilter, instrument_get, instrument_queryset

__all__ = ["InstrumentFilter", "instrument_get", "instrument_queryset"]
