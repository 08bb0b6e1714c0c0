"""Admin pieces shared by the apps.

``ExchangeModelAdmin`` is the base of every admin of the apps: its list
columns read as an operator expects (docs/architecture.md, "Admin lists"):
a foreign key is a link to the object's own admin page, amounts and counts
are grouped in the reader's language (German 1.234,56), datetimes are
Europe/Berlin (``TIME_ZONE``, as everywhere in the admin) and choices show
their labels, never the stored value.
"""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils import formats
from django.utils.html import format_html

# Integer fields that are identifiers or calendar numbers, not quantities: never grouped.
UNGROUPED = frozenset({"id", "year", "sequence", "position", "object_id"})


def grouped(value: Any, decimal_places: int | None = None) -> str:
    """A number with the thousands separator of the active language
    (``1.234,56`` / ``1,234.56``); an amount with more than two decimal
    places loses its trailing zeros (0,005, not 0,005000)."""
    if value is None:
        return "–"
    if isinstance(value, Decimal) and decimal_places is not None and decimal_places > 2:
        normal = value.normalize()
        exponent = normal.as_tuple().exponent
        places = max(-exponent, 2) if isinstance(exponent, int) else 2
        return formats.number_format(value, decimal_pos=places, force_grouping=True)
    return formats.number_format(value, decimal_pos=decimal_places, force_grouping=True)


# Link texts of models whose __str__ does not read well in a list (it
# names internal ids or stored values): an order is "#12", as members know it.
LINK_LABELS: dict[str, Callable[[Any], str]] = {
    "market.Order": lambda order: f"#{order.pk}",
}


def admin_link(obj: Any, label: str | None = None) -> str:
    """``obj`` as a link to its admin change page (its text alone if it has none)."""
    if obj is None:
        return "–"
    meta = obj._meta
    if label is None and meta.label in LINK_LABELS:
        label = LINK_LABELS[meta.label](obj)
    try:
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return str(label if label is not None else obj)
    return format_html('<a href="{}">{}</a>', url, label if label is not None else obj)


def _column(name: str, description: Any, render: Callable[[Any], str], ordering: str) -> Callable[[Any], str]:
    def column(obj: Any) -> str:
        return render(obj)

    column.short_description = description  # type: ignore[attr-defined]
    column.admin_order_field = ordering  # type: ignore[attr-defined]
    column.__name__ = name
    return column


class ListColumnsMixin:
    """Turns the plain field names of ``list_display`` into readable columns
    (see the module docstring). The row's link column and
    ``list_display_links`` are kept as they are."""

    model: type[models.Model]
    list_display_links: Any

    def get_list_display(self, request: HttpRequest) -> Any:
        names = list(super().get_list_display(request))  # type: ignore[misc]
        keep = set(self.list_display_links or names[:1])
        return [name if not isinstance(name, str) or name in keep else self._readable(name) for name in names]

    def _readable(self, name: str) -> Any:
        try:
            field = self.model._meta.get_field(name)
        except FieldDoesNotExist:
            return name
        if not isinstance(field, models.Field):
            return name
        description = field.verbose_name
        if isinstance(field, models.ForeignKey):
            return _column(name, description, lambda obj: admin_link(getattr(obj, name)), name)
        if isinstance(field, models.DecimalField):
            places = field.decimal_places
            return _column(name, description, lambda obj: grouped(getattr(obj, name), places), name)
        if isinstance(field, models.IntegerField) and not field.primary_key and not field.choices \
                and name not in UNGROUPED:
            return _column(name, description, lambda obj: grouped(getattr(obj, name)), name)
        return name


class ExchangeModelAdmin(ListColumnsMixin, admin.ModelAdmin):
    pass


class NoBulkDeleteMixin:
    """No "delete selected" action: these rows end through their services
    (a revoke, a decision), never by Django's bulk delete, which would skip them."""

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)  # type: ignore[misc]
        actions.pop("delete_selected", None)
        return actions


class BookedByServiceAdminMixin:
    """An add-only admin whose form books the row through a service in its
    ``clean()`` (a cash deposit, the start financing): the form class gets the
    operator, Django's own transaction around the POST is skipped (it would
    nest the service's durable one; the admin's log entry is written after the
    booking commits), saving does nothing more, and a booked row is never
    changed or deleted. ``add_fields``/``booked_fields`` name the fields."""

    add_fields: tuple[str, ...] = ()
    booked_fields: tuple[str, ...] = ()

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}  # a booking is never changed, so no bulk action either

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.add_fields if obj is None else self.booked_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.booked_fields

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]
        # A subclass per request: the operator is never shared between requests.
        return type(form.__name__, (form,), {"operator": request.user})

    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return self._changeform_view(  # type: ignore[attr-defined]  # Django's own undecorated view body
            request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        pass  # booked by the form's clean() through the service

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdminMixin:
    """Rows operators may look at but never add, change or delete: journals,
    audit logs, accounts whose balances only services move."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyAdminMixin, ExchangeModelAdmin):
    pass
