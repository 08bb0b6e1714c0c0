"""CSV for the public API's ``?format=csv`` (api-contract.md: results, indices,
settlement prices, open data).

A view that offers CSV lists ``CsvRenderer`` after the JSON renderer (JSON
stays the default), mixes in ``CsvErrorsAsJson`` and answers, when
``request.accepted_renderer.format == "csv"``, a list of flat dicts; its
``csv_columns`` name the columns in order (also the header of an empty
file). Values are written as the JSON has them: decimal strings with a
point, ISO 8601 times, ``true``/``false``, an empty cell for null. Comma-separated, UTF-8, CRLF
line ends (RFC 4180): open data for programs; a spreadsheet imports it with
"comma" and "point" chosen.
"""

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class CsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: Mapping[str, Any] | None = None) -> bytes:
        view = (renderer_context or {}).get("view")
        rows: Sequence[Mapping[str, Any]] = data or []
        columns = list(getattr(view, "csv_columns", None) or (rows[0].keys() if rows else []))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in columns])
        return out.getvalue().encode(self.charset)


class CsvErrorsAsJson:
    """Errors stay in the contract's JSON shape when CSV was asked for: a
    client reading ``?format=csv`` gets ``{"code", "detail", "fields"}`` with
    ``application/json``, never an error squeezed into a table."""

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        accepted = getattr(request, "accepted_renderer", None)
        if isinstance(response, Response) and response.status_code >= 400 and isinstance(accepted, CsvRenderer):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]


def csv_filename(response: Response, name: str) -> Response:
    """Offer the CSV answer as a download called ``name``."""
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
