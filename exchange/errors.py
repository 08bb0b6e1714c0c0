"""One domain error type, turned into the API contract's error shape by the
API exception handler and into field errors by forms.

Shape: ``{"code": "snake_case_reason", "detail": "human sentence",
"fields": {"field": ["message"]}}``.
"""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.forms import BaseForm
from django.http import Http404, HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

# HTTP status per contract code; codes not listed are 400.
STATUS_BY_CODE: dict[str, int] = {
    "invalid": 400,
    "tick_size": 400,
    "price_out_of_bounds": 400,
    "not_authenticated": 401,
    "authentication_failed": 401,
    "otp_required": 401,
    "kyc_not_approved": 403,
    "not_permitted": 403,
    "trading_stopped": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "instrument_closed": 409,
    "auction_closed": 409,
    "market_halted": 409,
    "insufficient_funds": 409,
    "insufficient_capacity": 409,
    "fok_not_fillable": 409,
    "post_only_would_trade": 409,
    "conflict": 409,
    "throttled": 429,
}


class ExchangeError(Exception):
    """A rule said no. Raised by services; nothing they wrote survives it."""

    def __init__(self, code: str, detail: str, fields: dict[str, list[str]] | None = None, status: int | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.fields = fields or {}
        self.status = status or STATUS_BY_CODE.get(code, 400)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.detail, "fields": self.fields}

    def __repr__(self) -> str:
        return f"ExchangeError({self.code!r}, {self.detail!r}, {self.fields!r})"


def _flatten(detail: Any) -> list[str]:
    if isinstance(detail, list):
        return [str(item) for sub in detail for item in _flatten(sub)]
    if isinstance(detail, dict):
        return [str(item) for sub in detail.values() for item in _flatten(sub)]
    return [str(detail)]


def _fields_from_validation(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {str(key): _flatten(value) for key, value in detail.items()}
    return {"non_field_errors": _flatten(detail)}


def error_from_exception(exc: Exception) -> ExchangeError | None:
    """Map any exception a view may meet onto the domain error, or None."""
    if isinstance(exc, ExchangeError):
        return exc
    if isinstance(exc, drf.ValidationError):
        fields = _fields_from_validation(exc.detail)
        return ExchangeError("invalid", _("The request is invalid."), fields)
    if isinstance(exc, drf.ParseError):
        return ExchangeError("invalid", str(exc.detail))
    if isinstance(exc, drf.NotAuthenticated):
        return ExchangeError("not_authenticated", str(exc.detail))
    if isinstance(exc, drf.AuthenticationFailed):
        return ExchangeError("authentication_failed", str(exc.detail))
    if isinstance(exc, drf.Throttled):
        return ExchangeError("throttled", str(exc.detail))
    if isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        return ExchangeError("not_permitted", _("You are not permitted to do this."))
    if isinstance(exc, (drf.NotFound, Http404)):
        return ExchangeError("not_found", _("Not found."))
    if isinstance(exc, drf.MethodNotAllowed):
        return ExchangeError("method_not_allowed", str(exc.detail))
    if isinstance(exc, drf.APIException):
        return ExchangeError(exc.default_code, str(exc.detail), status=exc.status_code)
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    error = error_from_exception(exc)
    if error is None:
        return drf_exception_handler(exc, context)
    response = Response(error.as_dict(), status=error.status)
    wait = getattr(exc, "wait", None)
    if isinstance(exc, drf.Throttled) and wait is not None:
        response["Retry-After"] = str(int(wait))
    if error.status == 401:
        response["WWW-Authenticate"] = "Token"
    return response


def add_error_to_form(form: BaseForm, error: ExchangeError) -> None:
    """Show a domain error at the form field it names, else above the form."""
    placed = False
    for field, messages in error.fields.items():
        target = field if field in form.fields else None
        for message in messages:
            form.add_error(target, message)
            placed = True
    if not placed:
        form.add_error(None, error.detail)


def api_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(ExchangeError("not_found", _("Not found.")).as_dict(), status=404)


def api_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(ExchangeError(
        "server_error", _("Something went wrong on our side. Please try again in a few minutes.")).as_dict(),
        status=500)
