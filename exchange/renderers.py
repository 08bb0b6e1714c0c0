"""CSV answers of the public API (``?format=csv``, the contract's open data).

A view offers CSV by adding ``CsvRenderer`` to its renderers and naming its
columns in ``csv_columns``; the JSON list and the CSV then come from the
same serializer data. ``CsvErrorsAsJsonMixin`` keeps errors in the
contract's JSON shape even when CSV was asked for. The CSV is plain and
machine-readable: UTF-8, comma-separated, a header row, decimal points,
``true``/``false``, an empty cell for null, CRLF line ends (RFC 4180).
"""

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class CsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: Mapping[str, Any] | None = None) -> bytes:
        view = (renderer_context or {}).get("view")
        columns: list[str] = list(getattr(view, "csv_columns", []))
        rows: Iterable[Mapping[str, Any]] = data if isinstance(data, list) else [data]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in columns])
        return out.getvalue().encode(self.charset)


class CsvErrorsAsJsonMixin:
    """Errors (4xx, 5xx) are answered in JSON whatever format was asked for."""

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        if response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]  # APIView's
