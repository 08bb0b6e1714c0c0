"""The open-data registry (issue 11; api-contract.md "Indices and open data"):
every dataset a public dashboard draws, with its columns, units, parameters
and methodology, served as JSON and CSV under ``/api/v1/open-data/``.

A dashboard module describes each dataset it draws once, at import, with
``register(Dataset(...))``; ``market.api_open_data`` serves the listing and
every dataset from here, and the page's chart is drawn from the same
``rows`` (so a download is exactly what the chart plots). A module that
registers datasets is named in ``SOURCES`` so that the listing holds all of
them whichever views have been imported.

``rows`` takes the request's query parameters (strings) and answers a list
of flat dicts keyed by the column names: decimals as ``Decimal`` (quantised;
the JSON renders them as strings), times as aware datetimes (rendered in UTC
and Europe/Berlin, see ``time_columns``), days as ``date``. It raises
``OpenDataError`` with a message per parameter for bad input. Rows never name
a member: aggregates only, and one of fewer than ``MIN_MEMBERS`` members is
suppressed where the methodology says so.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.utils.functional import Promise

from exchange.renderers import CsvRenderer
from market import calendar

LICENCE = "CC BY 4.0"
LICENCE_URL = "https://creativecommons.org/licenses/by/4.0/"
ATTRIBUTION = "Rechenbörse"
# Statistics offices' rule: an aggregate over fewer members than this is not shown.
MIN_MEMBERS = 3

BULK_PREFIX = "rechenboerse-open-data-"

# Modules whose import registers their datasets (each calls ``register`` at module level).
SOURCES: list[str] = ["market.selectors.activity", "market.selectors.power", "market.selectors.public_prices"]

Rows = list[dict[str, Any]]


class OpenDataError(Exception):
    """Bad parameters: ``errors`` maps each parameter to its messages (the contract's ``fields``)."""

    def __init__(self, errors: Mapping[str, list[str]]):
        super().__init__(errors)
        self.errors = dict(errors)


@dataclass(frozen=True)
class Column:
    name: str
    unit: str  # "EUR/GPUh", "GPUh", "GPUs", "members", "share" (0-1), "" for a label or a time
    description: str | Promise


@dataclass(frozen=True)
class Param:
    name: str
    description: str | Promise
    default: str = ""


@dataclass(frozen=True)
class Dataset:
    slug: str  # the URL part: /api/v1/open-data/<slug>/
    title: str | Promise
    description: str | Promise
    columns: tuple[Column, ...]
    rows: Callable[[Mapping[str, str]], Rows]
    methodology_url: str  # a path, e.g. /dashboard/methodology/index/
    methodology_version: str
    params: tuple[Param, ...] = ()
    page_url: str = ""  # the dashboard page that draws it
    # Columns holding aware datetimes: each is written twice, as "<name>_utc" and "<name>_berlin".
    time_columns: tuple[str, ...] = field(default=())

    @property
    def output_columns(self) -> list[str]:
        names: list[str] = []
        for column in self.columns:
            if column.name in self.time_columns:
                names += [f"{column.name}_utc", f"{column.name}_berlin"]
            else:
                names.append(column.name)
        return names

    def serialise(self, rows: Rows) -> Rows:
        """Rows as the JSON and the CSV carry them: decimals and days as strings,
        each time in UTC and in Berlin time, in the order of ``output_columns``."""
        out: Rows = []
        for row in rows:
            flat: dict[str, Any] = {}
            for column in self.columns:
                value = row.get(column.name)
                if column.name in self.time_columns:
                    flat[f"{column.name}_utc"] = _time(value, datetime.UTC)
                    flat[f"{column.name}_berlin"] = _time(value, calendar.BERLIN)
                else:
                    flat[column.name] = _plain(value)
            out.append(flat)
        return out


def _time(value: Any, zone: datetime.tzinfo) -> str | None:
    return None if value is None else value.astimezone(zone).isoformat()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


_REGISTRY: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    if dataset.slug in _REGISTRY and _REGISTRY[dataset.slug] is not dataset:
        raise ValueError(f"open-data dataset {dataset.slug!r} registered twice")
    _REGISTRY[dataset.slug] = dataset
    return dataset


def _load() -> None:
    for module in SOURCES:
        importlib.import_module(module)


def datasets() -> list[Dataset]:
    _load()
    return sorted(_REGISTRY.values(), key=lambda d: d.slug)


def get(slug: str) -> Dataset | None:
    _load()
    return _REGISTRY.get(slug)


def describe(dataset: Dataset, absolute: Callable[[str], str] = str) -> dict[str, Any]:
    """A dataset as the listing names it; ``absolute`` turns a path into the URL to print."""
    base = absolute(f"/api/v1/open-data/{dataset.slug}/")
    return {
        "slug": dataset.slug, "title": str(dataset.title), "description": str(dataset.description),
        "columns": [{"name": name, "unit": column.unit, "description": str(column.description)}
                    for column in dataset.columns
                    for name in ([f"{column.name}_utc", f"{column.name}_berlin"]
                                 if column.name in dataset.time_columns else [column.name])],
        "params": [{"name": p.name, "description": str(p.description), "default": p.default}
                   for p in dataset.params],
        "methodology_version": dataset.methodology_version, "licence": LICENCE, "page_url": dataset.page_url,
        "json_url": base, "csv_url": base + "?format=csv", "methodology_url": absolute(dataset.methodology_url),
    }


def licence_block() -> dict[str, str]:
    return {"name": LICENCE, "url": LICENCE_URL, "attribution": ATTRIBUTION}


def document(dataset: Dataset, params: Mapping[str, str], rows: Rows,
             absolute: Callable[[str], str] = str) -> dict[str, Any]:
    """The JSON answer of one dataset (``rows`` serialised)."""
    described = describe(dataset, absolute)
    return {"dataset": dataset.slug, "title": described["title"], "licence": LICENCE,
            "methodology_version": dataset.methodology_version, "columns": described["columns"],
            "params": dict(params), "rows": rows}


def csv_bytes(dataset: Dataset, rows: Rows) -> bytes:
    """The CSV answer of one dataset (``rows`` serialised), as the API writes it."""
    return CsvRenderer().render(rows, renderer_context={"view": SimpleNamespace(csv_columns=dataset.output_columns)})


# --- the daily bulk file ----------------------------------------------------------------------


def bulk_dir() -> Path:
    return Path(settings.VAR_DIR) / "open-data"


def bulk_path(day: datetime.date) -> Path:
    return bulk_dir() / f"{BULK_PREFIX}{day.isoformat()}.zip"


def bulk_days() -> list[datetime.date]:
    """The days a bulk file exists for, newest first."""
    days = []
    for path in bulk_dir().glob(f"{BULK_PREFIX}*.zip"):
        try:
            days.append(datetime.date.fromisoformat(path.stem.removeprefix(BULK_PREFIX)))
        except ValueError:
            continue
    return sorted(days, reverse=True)


def bulk_build(day: datetime.date, *, now: datetime.datetime) -> Path | None:
    """Write the bulk file of ``day``: every dataset with its default
    parameters as it stands at ``now`` (run just after the day ends), as CSV
    and JSON, with the listing and the licence. Written once (None if it
    exists), to a temporary name first so a reader never sees half a file."""
    target = bulk_path(day)
    if target.exists():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.part")
    everything = datasets()
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("datasets.json", _json({
            "day": day.isoformat(), "built_at": now.astimezone(datetime.UTC).isoformat(),
            "licence": licence_block(), "datasets": [describe(dataset) for dataset in everything]}))
        archive.writestr("LICENCE.txt", (
            f"Rechenbörse open data of {day.isoformat()}, "
            f"as published at {now.astimezone(calendar.BERLIN):%Y-%m-%d %H:%M} Europe/Berlin.\n"
            f"Licence: {LICENCE} ({LICENCE_URL}). Attribution: \"{ATTRIBUTION}\".\n"
            "Each dataset's columns, units and methodology are listed in datasets.json.\n"))
        for dataset in everything:
            rows = dataset.serialise(dataset.rows({}))
            archive.writestr(f"{dataset.slug}.csv", csv_bytes(dataset, rows))
            archive.writestr(f"{dataset.slug}.json", _json(document(dataset, {}, rows)))
    partial.replace(target)
    return target


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1)
