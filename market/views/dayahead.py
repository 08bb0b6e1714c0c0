"""The member screens of the day-ahead auction (issue 9; docs/architecture.md
"Day-ahead auction (issue 9)", "API and screens").

One page per delivery day, GPU class and zone (``/trading/dayahead/``): the
auction's status and gate closure, an hour-by-hour curve editor with the
curve drawn as the member types (``static/js/dayahead.js``), a block form,
the cash each would reserve (computed here by the service's own
``bid_spec``/``bid_reservation``, fetched by htmx), and the organisation's
bids of the day with cancel and, after clearing, the accepted GPUs. The
list follows the private stream (``/ws/private/``): the ``dayahead_result``
event of the run makes it fetch itself again.

Looking needs a member organisation that is not an observer; entering and
cancelling bids is the service's business (``trading_gate``: traders with an
approved KYC), which the page asks first so that nobody sees a form they
may not use. Errors come back at the field the service names, nothing saved.
As on the trading screen, htmx requests get their partial (status 200, with
the errors), plain form posts a redirect or the whole page.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from accounts.models import Membership
from accounts.selectors import membership_for
from clearing.selectors import account_summary, fee_terms_at
from exchange.errors import ExchangeError, add_error_to_form
from exchange.views import next_day_ahead_auction
from market import calendar
from market.models import AuctionStatus, BidKind, DayAheadAuction, DayAheadBid, GpuClass, Side
from market.selectors.member_bids import active_curves, auction_of, indicative_prices, member_bids
from market.services.controls import kill_switch_refusal
from market.services.dayahead import MAX_STEPS, auction_status, bid_reservation, bid_spec, dayahead_bid_cancel
from market.services.dayahead import dayahead_bid_submit as submit_bid
from market.views.trading import DEFAULT_ZONE, TradingRequest, _trading_refusal, _zone_choices

DAYS_BACK = 7  # past delivery days the day choice offers (their results)
DAYS_AHEAD = 14  # the book of D opens 14 days ahead (market rules §2.1)
DEFAULT_HOUR = "08"  # the editor's hour until one is chosen
NEW_CURVE_ROWS = 2  # empty step rows of a new curve
BIDS_CHANGED = "rb:dayahead-changed"  # the bid list fetches itself again

# Refusals that name no field, and where the member can act on them.
CURVE_FIELD_OF_CODE = {"insufficient_funds": "steps", "insufficient_capacity": "steps"}
BLOCK_FIELD_OF_CODE = {"insufficient_funds": "quantity", "insufficient_capacity": "quantity"}


# --- what the page is about: a delivery day, a class and a zone ------------------------------


@dataclass(frozen=True)
class Selection:
    day: datetime.date
    gpu_class: str
    zone: str

    def query(self, **extra: str) -> str:
        return urlencode({"delivery_date": self.day.isoformat(), "gpu_class": self.gpu_class, "zone": self.zone,
                          **extra})


def _class_choices() -> list[tuple[str, str]]:
    return [(klass.code, f"{klass.code} – {klass.name}") for klass in GpuClass.objects.filter(active=True)
            .order_by("code")]


def _day_choices(now: datetime.datetime) -> list[tuple[str, str]]:
    today = now.astimezone(calendar.BERLIN).date()
    choices = []
    for offset in range(-DAYS_BACK, DAYS_AHEAD + 1):
        day = today + datetime.timedelta(days=offset)
        state = _day_state(day, now)
        label = f"{date_format(day, 'D')}, {date_format(day, 'SHORT_DATE_FORMAT')}"
        choices.append((day.isoformat(), f"{label} · {STATE_LABELS[state]}"))
    return choices


class SelectionForm(forms.Form):
    """The page's choices (GET). A bad or missing value falls back to the default."""

    delivery_date = forms.ChoiceField(label=gettext_lazy("Delivery day"))
    gpu_class = forms.ChoiceField(label=gettext_lazy("GPU class"), choices=_class_choices)
    zone = forms.ChoiceField(label=gettext_lazy("Delivery zone"), choices=_zone_choices)

    def __init__(self, *args: Any, now: datetime.datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["delivery_date"]).choices = _day_choices(now)

    def choice(self, name: str, default: str) -> str:
        if self.is_bound and name in self.fields:
            field = self.fields[name]
            try:
                return str(field.clean(self.data.get(name)))
            except ValidationError:
                pass
        return default


def _selection(data: Any, now: datetime.datetime) -> tuple[Selection, SelectionForm]:
    """The day (default: the next auction's, i.e. tomorrow until gate
    closure, then the day after), class and zone of a request."""
    default_day = next_day_ahead_auction(now)[1]
    form = SelectionForm(data or None, now=now)
    classes = [code for code, _label in _class_choices()]
    default_class = "H100" if "H100" in classes else (classes[0] if classes else "")
    selection = Selection(day=datetime.date.fromisoformat(form.choice("delivery_date", default_day.isoformat())),
                          gpu_class=form.choice("gpu_class", default_class),
                          zone=form.choice("zone", DEFAULT_ZONE))
    return selection, _choose_form(selection, now)


def _choose_form(selection: Selection, now: datetime.datetime) -> SelectionForm:
    return SelectionForm(initial={"delivery_date": selection.day.isoformat(), "gpu_class": selection.gpu_class,
                                  "zone": selection.zone}, now=now, auto_id="choose_%s")


def _posted_selection(data: Any) -> Selection | None:
    """The day, class and zone a bid is for (hidden fields of the forms); the
    service checks the class and zone, the date is checked here."""
    try:
        day = datetime.date.fromisoformat(str(data.get("delivery_date", "")))
        calendar.day_hours(day)
    except (ValueError, calendar.CalendarError):
        return None
    return Selection(day=day, gpu_class=str(data.get("gpu_class", "")), zone=str(data.get("zone", "")))


# --- the auction's state ----------------------------------------------------------------------

STATE_LABELS = {
    "scheduled": gettext_lazy("not open yet"),
    "open": gettext_lazy("open for bids"),
    "closed": gettext_lazy("gate closed, clearing"),
    "cleared": gettext_lazy("cleared"),
}


def _day_state(day: datetime.date, now: datetime.datetime) -> str:
    """``scheduled`` | ``open`` | ``closed`` of a day's book by the calendar alone."""
    if now < calendar.dayahead_book_opens(day):
        return "scheduled"
    return auction_status(day, now)


@dataclass(frozen=True)
class AuctionState:
    state: str  # scheduled | open | closed | cleared
    book_opens_at: datetime.datetime
    gate_closure: datetime.datetime
    cleared_at: datetime.datetime | None
    countdown: str  # time left until gate closure, while open

    @property
    def label(self) -> str:
        return str(STATE_LABELS[self.state])

    @property
    def accepts_bids(self) -> bool:
        return self.state == "open"


def countdown_text(left: datetime.timedelta) -> str:
    """"2 days, 3 hours and 20 minutes" (the largest two or three units that are not 0)."""
    minutes = max(0, int(left.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = []
    if days:
        parts.append(ngettext("%(n)d day", "%(n)d days", days) % {"n": days})
    if hours:
        parts.append(ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours})
    if minutes or not parts:
        parts.append(ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes})
    if len(parts) == 1:
        return parts[0]
    return _("%(first)s and %(last)s") % {"first": ", ".join(parts[:-1]), "last": parts[-1]}


def _auction_state(selection: Selection, now: datetime.datetime) -> tuple[AuctionState, DayAheadAuction | None]:
    auction = auction_of(delivery_date=selection.day, gpu_class=selection.gpu_class, zone=selection.zone)
    gate = calendar.dayahead_gate_closure(selection.day)
    state = _day_state(selection.day, now)
    if auction is not None and auction.status == AuctionStatus.CLEARED:
        state = "cleared"
    return AuctionState(state=state, book_opens_at=calendar.dayahead_book_opens(selection.day), gate_closure=gate,
                        cleared_at=auction.cleared_at if auction is not None else None,
                        countdown=countdown_text(gate - now) if state == "open" else ""), auction


# --- the forms (shape only: the rules are the service's) --------------------------------------


def hour_text(hour: calendar.DeliveryHour) -> str:
    """"14:00–15:00"; the doubled hour of the October change with its label: "02:00–03:00 (02A)"."""
    start, end = hour.start.astimezone(calendar.BERLIN), hour.end.astimezone(calendar.BERLIN)
    text = f"{start:%H:%M}–{end:%H:%M}"
    return f"{text} ({hour.label})" if len(hour.label) > 2 else text


def _hour_choices(day: datetime.date) -> list[tuple[str, str]]:
    return [(hour.label, hour_text(hour)) for hour in calendar.day_hours(day)]


def _block_hour_choices(day: datetime.date, end: bool) -> list[tuple[str, str]]:
    """First hours by their start, last hours by their end: 08:00 to 20:00 is 08 to 19."""
    out = []
    for hour in calendar.day_hours(day):
        at = (hour.end if end else hour.start).astimezone(calendar.BERLIN)
        text = f"{at:%H:%M}" if len(hour.label) == 2 else f"{at:%H:%M} ({hour.label})"
        out.append((hour.label, text))
    return out


class CurveForm(forms.Form):
    """Side and hour of a curve; its steps are the table's rows (``StepRow``)."""

    side = forms.ChoiceField(label=gettext_lazy("Side"), choices=Side.choices, widget=forms.RadioSelect,
                             initial=Side.BUY)
    hour = forms.ChoiceField(label=gettext_lazy("Delivery hour"))

    def __init__(self, *args: Any, day: datetime.date, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "curve_%s")
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["hour"]).choices = _hour_choices(day)


class BlockForm(forms.Form):
    side = forms.ChoiceField(label=gettext_lazy("Side"), choices=Side.choices, widget=forms.RadioSelect,
                             initial=Side.BUY)
    first_hour = forms.ChoiceField(label=gettext_lazy("From"))
    last_hour = forms.ChoiceField(label=gettext_lazy("Until"))
    # No decimal places here: the tick is the service's rule (error tick_size).
    price = forms.DecimalField(label=gettext_lazy("Limit on the average price (EUR/GPUh)"), localize=True,
                               max_digits=14, widget=forms.TextInput(attrs={"inputmode": "decimal",
                                                                            "autocomplete": "off"}))
    quantity = forms.IntegerField(label=gettext_lazy("GPUs in each hour"), min_value=1,
                                  widget=forms.NumberInput(attrs={"inputmode": "numeric", "min": "1"}))
    min_acceptance_ratio = forms.DecimalField(
        label=gettext_lazy("Minimum acceptance ratio (MAR)"), localize=True, max_digits=6, initial=Decimal(1),
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        help_text=gettext_lazy("1 means all or nothing; 0.5 accepts the block with at least half its GPUs "
                               "(the same number in every hour)."))
    exclusive_group = forms.CharField(
        label=gettext_lazy("Exclusive group (optional)"), required=False, max_length=40,
        # The example is 08–20 or 20–08; a block is a run of hours of one delivery day, so the
        # night run would cross into the next day's auction: the example keeps to one day.
        help_text=gettext_lazy("At most one block of a group is accepted. A 12-hour training job that can run "
                               "08–20 or 12–24 enters both blocks with the same group name, e.g. “training”."))

    def __init__(self, *args: Any, day: datetime.date, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "block_%s")
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["first_hour"]).choices = _block_hour_choices(day, end=False)
        cast(forms.ChoiceField, self.fields["last_hour"]).choices = _block_hour_choices(day, end=True)
        cast(forms.ChoiceField, self.fields["first_hour"]).initial = "08"
        cast(forms.ChoiceField, self.fields["last_hour"]).initial = "19"


@dataclass
class StepRow:
    """One row of the steps table as typed, with its errors."""

    price: str = ""
    quantity: str = ""
    errors: list[str] | None = None

    @property
    def blank(self) -> bool:
        return not self.price.strip() and not self.quantity.strip()


_PRICE = forms.DecimalField(localize=True, max_digits=14)
_QUANTITY = forms.IntegerField(localize=True)


def _step_rows(data: Any) -> list[StepRow]:
    prices, quantities = data.getlist("step_price"), data.getlist("step_quantity")
    count = max(len(prices), len(quantities))
    prices += [""] * (count - len(prices))
    quantities += [""] * (count - len(quantities))
    return [StepRow(price=p, quantity=q) for p, q in zip(prices, quantities, strict=True)]


def _parsed_steps(rows: list[StepRow]) -> list[list[Any]] | None:
    """The steps of the filled rows as the service takes them (``[["12.50", 30], ...]``),
    or None when a row cannot be read (its errors are set)."""
    steps: list[list[Any]] = []
    readable = True
    for row in rows:
        if row.blank:
            continue
        errors = []
        try:
            price = _PRICE.clean(row.price)
        except ValidationError as error:
            errors.append(_("Price: %(error)s") % {"error": " ".join(error.messages)})
        try:
            quantity = _QUANTITY.clean(row.quantity)
        except ValidationError as error:
            errors.append(_("GPUs: %(error)s") % {"error": " ".join(error.messages)})
        if errors:
            row.errors, readable = errors, False
        else:
            steps.append([str(price), quantity])
    return steps if readable else None


def _rate(now: datetime.datetime) -> Decimal:
    return fee_terms_at(now).day_ahead_per_side


def _curve_request(data: Any, selection: Selection) -> tuple[CurveForm, list[StepRow], dict[str, Any] | None]:
    """The curve form and rows of a request, and the service's keyword arguments when both read."""
    form = CurveForm(data, day=selection.day)
    rows = _step_rows(data)
    steps = _parsed_steps(rows)
    if not form.is_valid() or steps is None:
        return form, rows, None
    return form, rows, {"delivery_date": selection.day, "gpu_class": selection.gpu_class, "zone": selection.zone,
                        "side": form.cleaned_data["side"], "kind": BidKind.CURVE, "hour": form.cleaned_data["hour"],
                        "steps": steps}


def _block_request(data: Any, selection: Selection) -> tuple[BlockForm, dict[str, Any] | None]:
    form = BlockForm(data, day=selection.day)
    if not form.is_valid():
        return form, None
    values = form.cleaned_data
    return form, {"delivery_date": selection.day, "gpu_class": selection.gpu_class, "zone": selection.zone,
                  "side": values["side"], "kind": BidKind.BLOCK, "first_hour": values["first_hour"],
                  "last_hour": values["last_hour"], "price": str(values["price"]), "quantity": values["quantity"],
                  "min_acceptance_ratio": str(values["min_acceptance_ratio"]),
                  "exclusive_group": values["exclusive_group"]}


def _place_curve_error(form: CurveForm, rows: list[StepRow], error: ExchangeError, bid: dict[str, Any],
                       now: datetime.datetime) -> list[str]:
    """Put the service's refusal at the field it names; answers the errors of
    the steps table as a whole. A refusal of the steps is asked again of each
    row alone (the service's own check), so that it shows at the row."""
    fields = dict(error.fields)
    if not fields and error.code in CURVE_FIELD_OF_CODE:
        fields = {CURVE_FIELD_OF_CODE[error.code]: [error.detail]}
    if "quantity" in fields:  # insufficient_capacity names the block form's field
        fields.setdefault("steps", []).extend(fields.pop("quantity"))
    table_errors = fields.pop("steps", [])
    if table_errors and error.code in ("invalid", "tick_size", "price_out_of_bounds"):
        rate = _rate(now)
        filled = [row for row in rows if not row.blank]
        for row, step in zip(filled, bid["steps"], strict=True):
            try:
                bid_spec(**{**bid, "steps": [step]}, rate=rate)
            except ExchangeError as alone:
                row.errors = alone.fields.get("steps") or [alone.detail]
        if any(row.errors for row in filled):
            table_errors = []
    if fields:
        add_error_to_form(form, ExchangeError(error.code, error.detail, fields))
    elif not table_errors and not any(row.errors for row in rows):
        form.add_error(None, error.detail)
    return table_errors


def _place_block_error(form: BlockForm, error: ExchangeError) -> None:
    if not error.fields and error.code in BLOCK_FIELD_OF_CODE:
        error = ExchangeError(error.code, error.detail, {BLOCK_FIELD_OF_CODE[error.code]: [error.detail]})
    add_error_to_form(form, error)


# --- context ----------------------------------------------------------------------------------


def _entry_refusal(membership: Membership) -> ExchangeError | None:
    """Why this member may not enter bids (the service's gate and the kill switch), or None."""
    return _trading_refusal(membership) or kill_switch_refusal(organisation_id=membership.organisation_id)


def _bids_context(membership: Membership, selection: Selection, now: datetime.datetime,
                  **extra: Any) -> dict[str, Any]:
    rows = member_bids(organisation=membership.organisation, delivery_date=selection.day)
    accepts = _day_state(selection.day, now) == "open"
    return {
        "selection": selection,
        "rows": rows,
        "can_cancel": accepts and _trading_refusal(membership) is None,
        "curves": active_curves(rows, gpu_class=selection.gpu_class, zone=selection.zone),
        "bids_url": f"{reverse('market_dayahead_bids')}?{selection.query()}",
        **extra,
    }


def _curve_context(membership: Membership, selection: Selection, state: AuctionState, *,
                   form: CurveForm | None = None, rows: list[StepRow] | None = None,
                   table_errors: list[str] | None = None, placed: DayAheadBid | None = None,
                   hour: str | None = None, curves: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The curve editor: a bound form as sent, or the hour's active curve (if any) to edit."""
    labels = [label for label, _text in _hour_choices(selection.day)]
    if form is None:
        chosen = hour if hour in labels else (DEFAULT_HOUR if DEFAULT_HOUR in labels else labels[0])
        if curves is None:
            curves = active_curves(member_bids(organisation=membership.organisation, delivery_date=selection.day),
                                   gpu_class=selection.gpu_class, zone=selection.zone)
        current = curves.get(chosen)
        form = CurveForm(day=selection.day, initial={"hour": chosen, "side": current["side"] if current else Side.BUY})
        if rows is None:
            rows = [StepRow(price=number_format(Decimal(price), 2), quantity=str(quantity))
                    for price, quantity in cast(list[list[Any]], current["steps"])] if current else []
    rows = rows or [StepRow() for _n in range(NEW_CURVE_ROWS)]
    return {"curve_form": form, "step_rows": rows, "table_errors": table_errors or [], "placed_curve": placed,
            "selection": selection, "state": state, "refusal": _entry_refusal(membership), "max_steps": MAX_STEPS,
            # "0,00" or "0.00": the decimal separator the rows accept in this language.
            "price_placeholder": number_format(Decimal("0.00"), 2)}


def _block_context(membership: Membership, selection: Selection, state: AuctionState, *,
                   form: BlockForm | None = None, placed: DayAheadBid | None = None) -> dict[str, Any]:
    return {"block_form": form or BlockForm(day=selection.day), "placed_block": placed, "selection": selection,
            "state": state, "refusal": _entry_refusal(membership)}


def _texts() -> dict[str, Any]:
    """Words static/js/dayahead.js writes into the page."""
    return {
        "buy": _("Buy"), "sell": _("Sell"), "gpus": _("GPUs"), "price": _("EUR/GPUh"),
        "cumulative": _("GPUs (cumulative)"), "indicative": _("Indicative price"),
        "day": [_("day"), _("days")], "hour": [_("hour"), _("hours")], "minute": [_("minute"), _("minutes")],
        "and": _("and"), "gate_passed": _("Gate closure has passed: reload the page for the auction's state."),
        "result": _("The auction %(auction)s has been cleared: your accepted quantities are in the list below."),
        "reload": _("Reload the page"), "live": _("live"), "offline": _("offline"),
        "new_hour": _("No curve of yours for this hour yet: the steps above are kept, so you can enter them "
                      "for this hour too."),
        "loaded": _("Your curve for this hour is loaded: sending replaces it."),
    }


def _page(request: TradingRequest, membership: Membership, selection: Selection, choose: SelectionForm,
          now: datetime.datetime, *, status: int = 200, **parts: Any) -> HttpResponse:
    state, auction = _auction_state(selection, now)
    bids = _bids_context(membership, selection, now)
    curve = parts.pop("curve", None) or _curve_context(membership, selection, state, hour=request.GET.get("hour"),
                                                       curves=bids["curves"])
    block = parts.pop("block", None) or _block_context(membership, selection, state)
    context = {
        "membership": membership,
        "choose": choose,
        "state": state,
        "auction": auction,
        "account": account_summary(organisation=membership.organisation),
        **bids,
        **curve,
        **block,
        "refusal": _entry_refusal(membership),
        "indicative": indicative_prices(auction) if state.state == "open" else {},
        "dayahead_text": _texts(),
    }
    return render(request, "market/dayahead/page.html", context, status=status)


def _member(request: TradingRequest) -> Membership | HttpResponse:
    """The member's membership, or the refusal page (no organisation, observer)."""
    membership = membership_for(request.user)
    if membership is None or membership.organisation.is_observer:
        return render(request, "market/trading_refused.html", {"refusal": _trading_refusal(membership)}, status=403)
    return membership


# --- views ------------------------------------------------------------------------------------


@login_required
@require_GET
def dayahead_page(request: TradingRequest) -> HttpResponse:
    membership = _member(request)
    if isinstance(membership, HttpResponse):
        return membership
    now = timezone.now()
    selection, choose = _selection(request.GET, now)
    return _page(request, membership, selection, choose, now)


@login_required
@require_GET
def dayahead_bids(request: TradingRequest) -> HttpResponse:
    """The bid list (htmx: after a bid, a cancel, and each private event)."""
    membership = _member(request)
    if isinstance(membership, HttpResponse):
        return membership
    now = timezone.now()
    selection, _choose = _selection(request.GET, now)
    return render(request, "market/dayahead/_bids.html", _bids_context(membership, selection, now))


def _page_url(selection: Selection, **extra: str) -> str:
    return f"{reverse('market_dayahead')}?{selection.query(**extra)}"


def _bid_summary(bid: DayAheadBid) -> str:
    values = {"id": bid.pk, "side": bid.get_side_display(),
              "reserved": number_format(bid.reserved_amount, 2, force_grouping=True)}
    if bid.kind == BidKind.CURVE:
        hour = calendar.delivery_hour(bid.auction.delivery_date, bid.hour)
        text = _("Curve %(id)s entered: %(side)s, %(hour)s.") % {**values, "hour": hour_text(hour)}
    else:
        text = _("Block %(id)s entered: %(side)s, %(first)s to %(last)s.") % {
            **values, "first": bid.first_hour, "last": bid.last_hour}
    if bid.reserved_amount > 0:
        text += " " + _("%(reserved)s EUR reserved until the auction clears.") % values
    return text


@login_required
@require_POST
def dayahead_curve_submit(request: TradingRequest) -> HttpResponse:
    membership = _member(request)
    if isinstance(membership, HttpResponse):
        return membership
    now = timezone.now()
    selection = _posted_selection(request.POST)
    if selection is None:
        return HttpResponse(_("Choose the delivery day again."), status=400)
    form, rows, bid = _curve_request(request.POST, selection)
    table_errors: list[str] = []
    placed = None
    if bid is not None:
        try:
            placed = submit_bid(user=request.user, **bid)
        except ExchangeError as error:
            table_errors = _place_curve_error(form, rows, error, bid, now)
    state, _auction = _auction_state(selection, now)
    if placed is not None:
        if not request.htmx:
            messages.success(request, _bid_summary(placed))
            return redirect(_page_url(selection, hour=placed.hour))
        context = _curve_context(membership, selection, state, placed=placed, hour=placed.hour)
        return trigger_client_event(render(request, "market/dayahead/_curve_editor.html", context), BIDS_CHANGED)
    curve = _curve_context(membership, selection, state, form=form, rows=rows, table_errors=table_errors)
    if request.htmx:
        return render(request, "market/dayahead/_curve_editor.html", curve)
    return _page(request, membership, selection, _choose_form(selection, now), now, status=400, curve=curve)


@login_required
@require_POST
def dayahead_block_submit(request: TradingRequest) -> HttpResponse:
    membership = _member(request)
    if isinstance(membership, HttpResponse):
        return membership
    now = timezone.now()
    selection = _posted_selection(request.POST)
    if selection is None:
        return HttpResponse(_("Choose the delivery day again."), status=400)
    form, bid = _block_request(request.POST, selection)
    placed = None
    if bid is not None:
        try:
            placed = submit_bid(user=request.user, **bid)
        except ExchangeError as error:
            _place_block_error(form, error)
    state, _auction = _auction_state(selection, now)
    if placed is not None:
        if not request.htmx:
            messages.success(request, _bid_summary(placed))
            return redirect(_page_url(selection))
        # A fresh form for the next block; the side stays.
        fresh = BlockForm(day=selection.day, initial={"side": placed.side})
        context = _block_context(membership, selection, state, form=fresh, placed=placed)
        return trigger_client_event(render(request, "market/dayahead/_block_form.html", context), BIDS_CHANGED)
    block = _block_context(membership, selection, state, form=form)
    if request.htmx:
        return render(request, "market/dayahead/_block_form.html", block)
    return _page(request, membership, selection, _choose_form(selection, now), now, status=400, block=block)


@dataclass(frozen=True)
class Preview:
    kind: str
    side: str
    reserved: Decimal
    quantity: int  # GPUs per hour at most
    hours: int
    cash_available: Decimal

    @property
    def shortfall(self) -> bool:
        return self.reserved > self.cash_available


@login_required
@require_GET
def dayahead_preview(request: TradingRequest) -> HttpResponse:
    """The cash a bid would reserve, by the service's own rule (htmx, on every
    change of a form). A read: nothing is reserved, the service checks again."""
    membership = _member(request)
    if isinstance(membership, HttpResponse):
        return membership
    selection = _posted_selection(request.GET)
    note = _("Enter prices and quantities to see the cash the bid reserves.")
    preview = None
    if selection is not None:
        if request.GET.get("kind") == BidKind.BLOCK:
            bid = _block_request(request.GET, selection)[1]
        else:
            bid = _curve_request(request.GET, selection)[2]
            if bid is not None and not bid["steps"]:
                bid = None
        if bid is not None:
            rate = _rate(timezone.now())
            try:
                spec = bid_spec(**bid, rate=rate)
            except ExchangeError as error:
                note = next((m for messages_ in error.fields.values() for m in messages_), error.detail)
            else:
                preview = Preview(kind=spec.kind, side=spec.side, reserved=bid_reservation(spec, rate),
                                  quantity=spec.total_quantity, hours=spec.hours,
                                  cash_available=account_summary(organisation=membership.organisation)[
                                      "cash_available"])
    return render(request, "market/dayahead/_preview.html", {"preview": preview, "note": note})


@login_required
@require_POST
def dayahead_cancel(request: TradingRequest, bid_id: int) -> HttpResponse:
    membership = _member(request)
    if isinstance(membership, HttpResponse):
        return membership
    # Another organisation's bid does not exist here.
    bid = (DayAheadBid.objects.filter(pk=bid_id, organisation=membership.organisation)
           .select_related("auction__gpu_class", "auction__zone").first())
    if bid is None:
        raise Http404
    try:
        cancelled = dayahead_bid_cancel(user=request.user, bid_id=bid.pk)
    except ExchangeError as refused:
        messages.error(request, refused.detail)
    else:
        messages.success(request, _("Bid %(id)s is withdrawn; %(amount)s EUR reservation released.") % {
            "id": cancelled.pk, "amount": number_format(bid.reserved_amount, 2, force_grouping=True)}
            if bid.reserved_amount > 0 else _("Bid %(id)s is withdrawn.") % {"id": cancelled.pk})
    posted = _posted_selection(request.POST)
    auction = bid.auction
    selection = Selection(day=auction.delivery_date,
                          gpu_class=posted.gpu_class if posted else auction.gpu_class.code,
                          zone=posted.zone if posted else auction.zone.code)
    if not request.htmx:
        return redirect(_page_url(selection))
    return render(request, "market/dayahead/_bids.html",
                  _bids_context(membership, selection, timezone.now(), messages_oob=True))


urlpatterns: list[URLPattern | URLResolver] = [
    path("trading/dayahead/", dayahead_page, name="market_dayahead"),
    path("trading/dayahead/bids/", dayahead_bids, name="market_dayahead_bids"),
    path("trading/dayahead/curve/", dayahead_curve_submit, name="market_dayahead_curve"),
    path("trading/dayahead/block/", dayahead_block_submit, name="market_dayahead_block"),
    path("trading/dayahead/preview/", dayahead_preview, name="market_dayahead_preview"),
    path("trading/dayahead/bids/<int:bid_id>/cancel/", dayahead_cancel, name="market_dayahead_cancel"),
]
