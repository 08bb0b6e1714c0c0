"""Open data (issue 11; api-contract.md "Indices and open data"):
``GET /api/v1/open-data/``, the listing of every dataset the public
dashboards draw, and ``GET /api/v1/open-data/<slug>/``, one dataset as JSON
or, with ``?format=csv``, CSV with the same columns. Public, no login;
anonymous readers are limited by the ``open_data`` rate (settings, README).
Licence CC BY 4.0, sent in the ``Link`` header with the methodology.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.http import FileResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from exchange.errors import ExchangeError
from exchange.renderers import CsvErrorsAsJson, CsvRenderer, csv_filename
from exchange.schema import ErrorSerializer
from market import open_data
from market.open_data import Dataset


def _describe(request: Request, dataset: Dataset) -> dict[str, Any]:
    return open_data.describe(dataset, request.build_absolute_uri)


def _licence(response: Response, request: Request, dataset: Dataset) -> Response:
    methodology = request.build_absolute_uri(dataset.methodology_url)
    response["Link"] = f'<{open_data.LICENCE_URL}>; rel="license", <{methodology}>; rel="describedby"'
    return response


class OpenDataThrottle(ScopedRateThrottle):
    """A generous limit of its own for readers of open data (``RATE_OPEN_DATA``)."""

    scope = "open_data"


class _OpenDataAPIView(APIView):
    """Public, no authentication read (no session, no CSRF), under the open-data rate."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    throttle_classes = [OpenDataThrottle]
    throttle_scope = "open_data"


class OpenDataListView(_OpenDataAPIView):
    @extend_schema(
        operation_id="open_data_list",
        summary="Every dataset of the public dashboards",
        description="Each dataset's columns with units, its parameters, JSON and CSV URLs, methodology page and "
                    "version, and the licence (CC BY 4.0).",
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT)},
        auth=[],
    )
    def get(self, request: Request) -> Response:
        return Response({
            "licence": open_data.licence_block(),
            "datasets": [_describe(request, dataset) for dataset in open_data.datasets()],
            "bulk_url": request.build_absolute_uri("/api/v1/open-data/bulk/"),
        })


class OpenDataView(CsvErrorsAsJson, _OpenDataAPIView):
    renderer_classes = [JSONRenderer, CsvRenderer]

    @extend_schema(
        operation_id="open_data_dataset",
        summary="One open dataset, as JSON or CSV",
        description="JSON: `{dataset, title, licence, methodology_version, columns, params, rows}`; "
                    "`?format=csv`: the rows only, one column per name in `columns` (UTF-8, comma, header row, "
                    "empty cell for null). Times are given twice, in UTC (`*_utc`) and Europe/Berlin "
                    "(`*_berlin`). The parameters of each dataset are in the listing.",
        responses={(200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT),
                   (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The rows as CSV."),
                   (400, "application/json"): OpenApiResponse(ErrorSerializer, description="`invalid` parameters."),
                   (404, "application/json"): OpenApiResponse(ErrorSerializer, description="No such dataset.")},
        auth=[],
    )
    def get(self, request: Request, slug: str) -> Response:
        dataset = open_data.get(slug)
        if dataset is None:
            raise ExchangeError("not_found", _("There is no open dataset of this name."))
        params = {key: str(request.query_params.get(key, "")) for key in request.query_params if key != "format"}
        try:
            rows = dataset.serialise(dataset.rows(params))
        except open_data.OpenDataError as error:
            raise ExchangeError("invalid", _("The request is invalid."), error.errors) from error
        self.csv_columns = dataset.output_columns
        if request.accepted_renderer.format == CsvRenderer.format:
            return _licence(csv_filename(Response(rows), f"{dataset.slug}.csv"), request, dataset)
        return _licence(Response(open_data.document(dataset, params, rows, request.build_absolute_uri)),
                        request, dataset)


class OpenDataBulkListView(_OpenDataAPIView):
    @extend_schema(
        operation_id="open_data_bulk_list",
        summary="The daily bulk files of all open data",
        description="One ZIP per day, built just after the day ends (00:30 Europe/Berlin): every dataset with its "
                    "default parameters as CSV and JSON, `datasets.json` (the listing) and `LICENCE.txt`.",
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT)},
        auth=[],
    )
    def get(self, request: Request) -> Response:
        return Response({"licence": open_data.licence_block(), "files": [
            {"date": day.isoformat(), "url": request.build_absolute_uri(f"/api/v1/open-data/bulk/{day.isoformat()}/"),
             "bytes": open_data.bulk_path(day).stat().st_size} for day in open_data.bulk_days()]})


class OpenDataBulkView(_OpenDataAPIView):
    @extend_schema(
        operation_id="open_data_bulk_day",
        summary="One day's bulk file (ZIP)",
        responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY),
                   (404, "application/json"): OpenApiResponse(ErrorSerializer, description="No file for that day.")},
        auth=[],
    )
    def get(self, request: Request, day: str) -> FileResponse:
        try:
            path = open_data.bulk_path(date.fromisoformat(day))
        except ValueError as error:
            raise ExchangeError("invalid", _("The request is invalid."),
                                {"date": [_("Enter a date as YYYY-MM-DD.")]}) from error
        if not path.exists():
            raise ExchangeError("not_found", _("There is no bulk file for this day."))
        response = FileResponse(path.open("rb"), as_attachment=True, filename=path.name,
                                content_type="application/zip")
        response["Link"] = f'<{open_data.LICENCE_URL}>; rel="license"'
        return response
