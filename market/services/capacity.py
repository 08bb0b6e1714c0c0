"""Provider capacity: sites, GPUs per class, and the sell-side capacity check
(market rules §3; the rule itself is the pure ``market.capacity``).

Locks: every write here locks the provider's ``Organisation`` row first. The
order service locks the instrument and then the seller's organisation row
before it calls ``capacity_check``, so a sell and a capacity reduction of the
same organisation never interleave: whichever comes second sees what the
first committed. Trades by other members only ever lower an organisation's
commitments (a fill of its sell lowers its open quantity and its position by
the same amount; a fill of its buy raises its position), so they need not
take that lock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, IntegerField, Max, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from accounts.models import Membership, Organisation
from accounts.services import audit_record, trading_gate
from exchange.errors import ExchangeError
from exchange.locks import lock_organisations
from market import calendar
from market.capacity import DE, Commitments, check_sell, commitment, is_feasible
from market.models import (
    RESTING_STATUSES,
    DeliveryZone,
    GpuClass,
    Instrument,
    Order,
    Position,
    Segment,
    Side,
    Site,
    SiteCapacity,
    SiteUsage,
)

if TYPE_CHECKING:
    from accounts.models import User

# Instruments of one delivery hour (the day-ahead segment is kept in the
# choices but its results are booked on the hourly instruments).
HOURLY_SEGMENTS = (Segment.INTRADAY, Segment.DAYAHEAD)
# Far above any single site, low enough that a typing slip ("5000000") is caught.
MAX_GPUS_PER_SITE_AND_CLASS = 1_000_000


# --- reading commitments (shared with market.selectors.capacity) -------------------------


@dataclass(frozen=True)
class InstrumentCommitment:
    """One hourly instrument as far as the organisation's capacity is concerned."""

    instrument_id: int
    gpu_class_id: int
    delivery_start: datetime
    zone: str
    open_sell: int
    net_position: int
    # What the organisation offers in the hour's open day-ahead auction of
    # this zone (``DayAheadCommitment``); only ``hour_commitments`` reads it.
    dayahead_offer: int = 0

    @property
    def committed(self) -> int:
        return commitment(open_sell=self.open_sell, net_position=self.net_position)


def instrument_commitments(
    *, organisation: Organisation | int, instruments: QuerySet[Instrument], only_active: bool = True
) -> list[InstrumentCommitment]:
    """The organisation's open sell quantity and net position in each of the
    hourly ``instruments``, in one query. With ``only_active`` the
    instruments where it has neither are left out."""
    orders = Order.objects.filter(
        instrument=OuterRef("pk"), organisation=organisation, side=Side.SELL, status__in=RESTING_STATUSES
    )
    open_sell = (
        orders.order_by().values("instrument").annotate(total=Sum(F("quantity") - F("filled_quantity"))).values("total")
    )
    positions = Position.objects.filter(instrument=OuterRef("pk"), organisation=organisation).exclude(quantity=0)
    rows = instruments.filter(segment__in=HOURLY_SEGMENTS)
    if only_active:
        rows = rows.filter(Exists(orders) | Exists(positions))
    rows = rows.annotate(
        open_sell=Coalesce(Subquery(open_sell, output_field=IntegerField()), Value(0)),
        net_position=Coalesce(Subquery(positions.values("quantity")[:1], output_field=IntegerField()), Value(0)),
    )
    return [
        InstrumentCommitment(*row)
        for row in rows.order_by().values_list(
            "pk", "gpu_class_id", "delivery_start", "zone__code", "open_sell", "net_position"
        )
    ]


def hour_commitments(
    *, organisation_id: int, gpu_class_id: int, delivery_start: datetime
) -> list[InstrumentCommitment]:
    """``instrument_commitments`` for every zone's instrument of one class and
    delivery hour (idle ones included), as one plain statement: the order
    path asks this for every sell and every trade, where the ORM's compile
    of the general query costs more than the query itself."""
    from market.models import DayAheadCommitment

    order, position = Order._meta.db_table, Position._meta.db_table
    instrument, zone = Instrument._meta.db_table, DeliveryZone._meta.db_table
    offer = DayAheadCommitment._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT i.id, i.gpu_class_id, i.delivery_start, z.code, "  # noqa: S608 (model table names)
            f"COALESCE((SELECT SUM(o.quantity - o.filled_quantity) FROM {order} o WHERE o.instrument_id = i.id "
            f"AND o.organisation_id = %s AND o.side = %s AND o.status IN (%s, %s)), 0), "
            f"COALESCE((SELECT p.quantity FROM {position} p WHERE p.instrument_id = i.id "
            f"AND p.organisation_id = %s), 0), "
            f"COALESCE((SELECT SUM(d.gpus) FROM {offer} d WHERE d.organisation_id = %s "
            f"AND d.gpu_class_id = i.gpu_class_id AND d.zone_id = i.zone_id AND d.hour_start = i.delivery_start), 0) "
            f"FROM {instrument} i JOIN {zone} z ON z.id = i.zone_id "
            f"WHERE i.gpu_class_id = %s AND i.delivery_start = %s AND i.segment IN (%s, %s)",
            [organisation_id, Side.SELL, *RESTING_STATUSES, organisation_id, organisation_id, gpu_class_id,
             connection.ops.adapt_datetimefield_value(delivery_start),
             *HOURLY_SEGMENTS],
        )
        return [InstrumentCommitment(pk, cls, start, code, int(open_sell), int(position), int(dayahead))
                for pk, cls, start, code, open_sell, position, dayahead in cursor.fetchall()]


class HourCommitments:
    """``hour_commitments`` kept for one transaction that locks the
    organisations and tells this memo of every change it writes to their
    sells and positions (a batch of orders: ``market.services.orders``):
    each (organisation, class, hour) is read once, then follows the
    transaction's writes (``open_sell``, ``position``), so it answers what
    the database would. Rows are replaced, never changed: a list handed out
    stays as it was."""

    def __init__(self) -> None:
        self._rows: dict[tuple[int, int, datetime], list[InstrumentCommitment]] = {}

    def get(self, *, organisation_id: int, gpu_class_id: int, delivery_start: datetime) -> list[InstrumentCommitment]:
        key = (organisation_id, gpu_class_id, delivery_start)
        rows = self._rows.get(key)
        if rows is None:
            rows = self._rows[key] = hour_commitments(organisation_id=organisation_id, gpu_class_id=gpu_class_id,
                                                      delivery_start=delivery_start)
        return list(rows)

    def _change(self, organisation_id: int, instrument: Instrument, **deltas: int) -> None:
        rows = self._rows.get((organisation_id, instrument.gpu_class_id, instrument.delivery_start))
        if rows is None:  # not read yet: the database has the change
            return
        for index, row in enumerate(rows):
            if row.instrument_id == instrument.pk:
                rows[index] = replace(row, **{name: getattr(row, name) + delta for name, delta in deltas.items()})

    def open_sell(self, organisation_id: int, instrument: Instrument, delta: int) -> None:
        """The organisation's open sell quantity in ``instrument`` changed by ``delta``."""
        if delta:
            self._change(organisation_id, instrument, open_sell=delta)

    def position(self, organisation_id: int, instrument: Instrument, delta: int) -> None:
        """The organisation's position in ``instrument`` changed by ``delta``."""
        if delta:
            self._change(organisation_id, instrument, net_position=delta)


def dayahead_commitments(
    *, organisation_id: int, gpu_class_id: int, starts: Iterable[datetime] | None = None,
    ending_after: datetime | None = None,
) -> dict[datetime, dict[str, int]]:
    """What the organisation offers in open day-ahead auctions
    (``DayAheadCommitment``: the most each auction can sell of it in an
    hour), per delivery hour start and zone: capacity that counts as
    committed until the auction clears. One query."""
    from market.models import DayAheadCommitment

    rows = DayAheadCommitment.objects.filter(organisation_id=organisation_id, gpu_class_id=gpu_class_id)
    if starts is not None:
        rows = rows.filter(hour_start__in=list(starts))
    if ending_after is not None:
        rows = rows.filter(hour_start__gt=ending_after - calendar.HOUR)
    result: dict[datetime, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for start, zone, gpus in rows.order_by().values_list("hour_start", "zone__code", "gpus"):
        result[start][zone] += gpus
    return result


def capacity_by_state(
    *, organisation: Organisation, gpu_class_ids: list[int] | None = None
) -> dict[int, dict[str, int]]:
    """GPUs per class id and state over the organisation's sites (one plain
    statement: every sell asks it)."""
    capacity, site = (connection.ops.quote_name(model._meta.db_table) for model in (SiteCapacity, Site))
    sql = (f"SELECT c.gpu_class_id, s.state, SUM(c.gpus) FROM {capacity} c "  # noqa: S608 (model tables)
           f"JOIN {site} s ON s.id = c.site_id WHERE s.organisation_id = %s AND c.gpus > 0")
    params: list[Any] = [organisation.pk]
    if gpu_class_ids is not None:
        if not gpu_class_ids:
            return {}
        sql += f" AND c.gpu_class_id IN ({', '.join(['%s'] * len(gpu_class_ids))})"
        params += gpu_class_ids
    result: dict[int, dict[str, int]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(sql + " GROUP BY c.gpu_class_id, s.state", params)
        for gpu_class_id, state, gpus in cursor.fetchall():
            result[gpu_class_id][state] = int(gpus)
    return dict(result)


def commitments_by_hour(
    rows: list[InstrumentCommitment],
) -> dict[tuple[int, datetime], dict[str, int]]:
    """Commitments per (class id, delivery start) and zone."""
    result: dict[tuple[int, datetime], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        result[row.gpu_class_id, row.delivery_start][row.zone] += row.committed
    return result


def as_commitments(by_zone: dict[str, int]) -> Commitments:
    return Commitments(de=by_zone.get(DE, 0), states={zone: q for zone, q in by_zone.items() if zone != DE and q})


# --- the pre-trade check ----------------------------------------------------------------


def capacity_check(*, organisation: Organisation, instrument: Instrument, quantity: int,
                   sites: dict[tuple[int, int], dict[str, int]] | None = None,
                   commitments: HourCommitments | None = None) -> None:
    """Refuse (``insufficient_capacity``) a new sell of ``quantity`` GPUs in
    ``instrument`` that the organisation's sites could not deliver together
    with everything it has already sold or offered in that hour.

    For the order service, inside its transaction, after it has locked the
    instrument row and then the seller's organisation row; reads only (two
    queries). Call it before the new order is saved, with the order's whole
    quantity (an amend: with the increase): the resale of capacity bought
    earlier in this instrument is accounted for here, from the position.
    Futures are cash-settled and need no capacity.

    ``sites``: a memo of the organisations' capacity by state, per
    (organisation id, class id), that a caller keeps for one transaction
    (the organisation is locked, so its sites cannot change meanwhile).
    ``commitments``: the transaction's ``HourCommitments``, if it keeps one.
    """
    if instrument.segment not in HOURLY_SEGMENTS:
        return
    if quantity <= 0:
        raise ExchangeError("invalid", _("The quantity must be at least 1."),
                            {"quantity": [_("The quantity must be at least 1.")]})
    rows = (commitments.get if commitments is not None else hour_commitments)(
        organisation_id=organisation.pk, gpu_class_id=instrument.gpu_class_id,
        delivery_start=instrument.delivery_start)
    this = next(row for row in rows if row.instrument_id == instrument.pk)
    others: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.instrument_id != instrument.pk:
            others[row.zone] += row.committed
        # What the organisation offers in the hour's open day-ahead auctions, every zone's.
        others[row.zone] += row.dayahead_offer
    key = (organisation.pk, instrument.gpu_class_id)
    capacity = sites.get(key) if sites is not None else None
    if capacity is None:
        capacity = capacity_by_state(organisation=organisation, gpu_class_ids=[instrument.gpu_class_id]).get(
            instrument.gpu_class_id, {})
        if sites is not None:
            sites[key] = capacity
    result = check_sell(
        capacity, as_commitments(others), zone=this.zone,
        open_sell=this.open_sell, net_position=this.net_position, quantity=quantity,
    )
    if result.accepted:
        return
    names = {"sellable": result.sellable, "symbol": instrument.symbol, "zone": this.zone}
    if not capacity and result.sellable == 0:
        detail = _(
            "Your organisation has no registered capacity of this GPU class, so it can sell in %(symbol)s "
            "only what it bought there before. Register sites and capacity on the provider page."
        ) % names
    else:
        detail = _(
            "Not enough free capacity: your organisation can sell at most %(sellable)d GPUs in %(symbol)s "
            "(free capacity for zone %(zone)s plus capacity bought in this instrument before)."
        ) % names
    raise ExchangeError(
        "insufficient_capacity", detail,
        {"quantity": [_("At most %(sellable)d GPUs can be sold here now.") % names]},
    )


# --- sites -------------------------------------------------------------------------------


def _own_site(membership: Membership, site: Site) -> Site:
    """The site, locked and re-read, if it belongs to the member's
    organisation; to anyone else it does not exist."""
    found = Site.objects.select_for_update().filter(pk=site.pk, organisation_id=membership.organisation_id).first()
    if found is None:
        raise ExchangeError("not_found", _("This site does not exist."))
    return found


def _invalid(fields: dict[str, list[str]]) -> ExchangeError:
    return ExchangeError("invalid", _("Please correct the marked fields."), fields)


def _validated(site: Site) -> None:
    fields: dict[str, list[str]] = {}
    try:
        site.full_clean(exclude=["organisation"], validate_constraints=False)
    except ValidationError as error:
        for name, messages in error.message_dict.items():
            fields.setdefault("non_field_errors" if name == "__all__" else name, []).extend(messages)
    if site.name and "name" not in fields:
        taken = Site.objects.filter(organisation_id=site.organisation_id, name__iexact=site.name)
        if site.pk is not None:
            taken = taken.exclude(pk=site.pk)
        if taken.exists():
            fields["name"] = [_("Your organisation already has a site with this name.")]
    if fields:
        raise _invalid(fields)


def _site_state(site: Site) -> dict[str, Any]:
    return {"name": site.name, "state": site.state, "energy_source": site.energy_source, "pue": str(site.pue)}


def _save_site(site: Site) -> None:
    try:
        with transaction.atomic():
            site.save()
    except IntegrityError:
        # A colleague saved a site of the same name a moment ago.
        raise _invalid({"name": [_("Your organisation already has a site with this name.")]}) from None


@transaction.atomic(durable=True)
def site_create(*, user: User, name: str, state: str, energy_source: str, pue: Decimal | str) -> Site:
    """A new site of the user's organisation (provider role), without capacity."""
    membership = trading_gate(user=user, role="provider")
    lock_organisations([membership.organisation_id])
    site = Site(
        organisation_id=membership.organisation_id, name=(name or "").strip(), state=state,
        energy_source=energy_source, pue=pue,
    )
    _validated(site)
    _save_site(site)
    audit_record(actor=user, action="site.create", organisation=membership.organisation, obj=site,
                 before={}, after=_site_state(site))
    return site


@transaction.atomic(durable=True)
def site_update(
    *, user: User, site: Site, name: str, state: str, energy_source: str, pue: Decimal | str
) -> Site:
    """Change a site's details. Moving it to another state moves its capacity
    there, which is refused (``insufficient_capacity``) while what is sold or
    offered for a delivery hour that has not ended needs it where it is."""
    membership = trading_gate(user=user, role="provider")
    lock_organisations([membership.organisation_id])
    current = _own_site(membership, site)
    before = _site_state(current)
    current.name, current.state, current.energy_source, current.pue = (
        (name or "").strip(), state, energy_source, pue
    )
    _validated(current)
    if current.state != before["state"]:
        _refuse_move(organisation=membership.organisation, site=current, source=before["state"])
    _save_site(current)
    audit_record(actor=user, action="site.update", organisation=membership.organisation, obj=current,
                 before=before, after=_site_state(current))
    return current


@transaction.atomic(durable=True)
def site_capacity_set(*, user: User, site: Site, gpu_class: GpuClass, gpus: int) -> SiteCapacity:
    """Set how many GPUs of ``gpu_class`` the site offers; 0 removes the class
    from the site (the returned object is then unsaved, with 0 GPUs).

    A reduction is refused (``insufficient_capacity``, at ``gpus``) when the
    organisation's sites could then no longer deliver what it has sold or
    offered for a delivery hour that has not ended: cancel sell orders first.
    Raising capacity is always allowed.
    """
    membership = trading_gate(user=user, role="provider")
    lock_organisations([membership.organisation_id])
    current = _own_site(membership, site)
    if isinstance(gpus, bool) or not isinstance(gpus, int) or not 0 <= gpus <= MAX_GPUS_PER_SITE_AND_CLASS:
        raise _invalid({"gpus": [_("Enter a whole number of GPUs from 0 to %(max)s.")
                                 % {"max": formats.number_format(MAX_GPUS_PER_SITE_AND_CLASS, force_grouping=True)}]})
    if gpus and not gpu_class.active:
        raise _invalid({"gpu_class": [_("This GPU class is no longer traded.")]})
    row = SiteCapacity.objects.select_for_update(no_key=True).filter(site=current, gpu_class=gpu_class).first()
    old = row.gpus if row is not None else 0
    if gpus < old:
        _refuse_below_use(site=current, gpu_class=gpu_class, new=gpus)
        _refuse_reduction(organisation=membership.organisation, site=current, gpu_class=gpu_class, old=old, new=gpus)
    if gpus == 0:
        if row is not None:
            row.delete()
        result = SiteCapacity(site=current, gpu_class=gpu_class, gpus=0)
    elif row is None:
        result = SiteCapacity.objects.create(site=current, gpu_class=gpu_class, gpus=gpus)
    else:
        row.gpus = gpus
        row.save(update_fields=["gpus"])
        result = row
    if gpus != old:
        audit_record(actor=user, action="site_capacity.set", organisation=membership.organisation, obj=current,
                     before={"gpu_class": gpu_class.code, "gpus": old},
                     after={"gpu_class": gpu_class.code, "gpus": gpus})
    return result


def _open_hours(*, organisation: Organisation, class_ids: list[int], now: datetime | None = None
                ) -> dict[tuple[int, datetime], dict[str, int]]:
    """The organisation's commitments per (class, hour) in hours whose delivery has not ended."""
    now = now or timezone.now()
    rows = instrument_commitments(
        organisation=organisation,
        instruments=Instrument.objects.filter(gpu_class_id__in=class_ids, delivery_end__gt=now),
    )
    hours = commitments_by_hour(rows)
    for class_id in class_ids:  # offers in open day-ahead auctions count too
        for start, by_zone in dayahead_commitments(organisation_id=organisation.pk, gpu_class_id=class_id,
                                                   ending_after=now).items():
            for zone, gpus in by_zone.items():
                hours[class_id, start][zone] += gpus
    return dict(sorted(hours.items(), key=lambda item: (item[0][1], item[0][0])))


def _overcommitted(capacity: dict[int, dict[str, int]], hours: dict[tuple[int, datetime], dict[str, int]]
                   ) -> tuple[int, datetime, dict[str, int]] | None:
    """The first hour whose commitments ``capacity`` could not deliver."""
    for (class_id, start), by_zone in hours.items():
        if not is_feasible(capacity.get(class_id, {}), as_commitments(by_zone)):
            return class_id, start, by_zone
    return None


def _hour_names(class_id: int, start: datetime, by_zone: dict[str, int]) -> dict[str, Any]:
    hour = calendar.hour_at(start)
    return {
        "gpu_class": GpuClass.objects.get(pk=class_id).code,
        "day": formats.date_format(hour.day, "SHORT_DATE_FORMAT"),
        "hour": hour.label,
        "committed": sum(by_zone.values()),
    }


def _refuse_reduction(*, organisation: Organisation, site: Site, gpu_class: GpuClass, old: int, new: int) -> None:
    """Refuse (``insufficient_capacity``, at ``gpus``) to lower the site's
    capacity of the class from ``old`` to ``new`` if some hour whose delivery
    has not ended could then no longer be delivered; name the smallest
    capacity of this site that still works."""
    hours = _open_hours(organisation=organisation, class_ids=[gpu_class.pk])
    others = capacity_by_state(organisation=organisation, gpu_class_ids=[gpu_class.pk]).get(gpu_class.pk, {})
    others[site.state] = others.get(site.state, 0) - old  # the rest of the organisation's capacity

    def first_failure(gpus: int) -> tuple[int, datetime, dict[str, int]] | None:
        capacity = dict(others)
        capacity[site.state] += gpus
        return _overcommitted({gpu_class.pk: capacity}, hours)

    failure = first_failure(new)
    if failure is None:
        return
    # Feasibility only grows with capacity: bisect for the smallest that works
    # (the current one, if even that does not).
    low, high = new, old
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if first_failure(middle) is None else (middle, high)
    names = {**_hour_names(*failure), "minimum": high}
    message = _(
        "At least %(minimum)d GPUs are needed here: for hour %(hour)s on %(day)s your organisation has sold or "
        "offered %(committed)d GPUs of %(gpu_class)s. Cancel sell orders first to go lower."
    ) % names
    raise ExchangeError("insufficient_capacity", message, {"gpus": [message]})


def _refuse_below_use(*, site: Site, gpu_class: GpuClass, new: int, now: datetime | None = None) -> None:
    """Refuse (``insufficient_capacity``, at ``gpus``) a capacity below what
    delivery tickets already use on this site in an hour not yet delivered."""
    used = (SiteUsage.objects.filter(site=site, gpu_class=gpu_class,
                                     hour_start__gte=(now or timezone.now()) - calendar.HOUR)
            .aggregate(most=Max("gpus"))["most"] or 0)
    if new < used:
        message = _("At least %(minimum)d GPUs are needed here: that many are already sold for delivery from this "
                    "site in one hour.") % {"minimum": used}
        raise ExchangeError("insufficient_capacity", message, {"gpus": [message]})


def _refuse_move(*, organisation: Organisation, site: Site, source: str) -> None:
    """Refuse (``insufficient_capacity``, at ``state``) to move the site, with
    its capacity, from state ``source`` to ``site.state`` if some hour whose
    delivery has not ended could then no longer be delivered."""
    moved = dict(site.capacities.values_list("gpu_class_id", "gpus"))
    if not moved:
        return
    if SiteUsage.objects.filter(site=site, gpus__gt=0, hour_start__gte=timezone.now() - calendar.HOUR).exists():
        # Its tickets name this site in its state: a state's buyers were sold GPUs there.
        message = _("The site delivers GPUs already sold for an hour not yet delivered; it cannot move to "
                    "another state before those deliveries end.")
        raise ExchangeError("insufficient_capacity", message, {"state": [message]})
    capacity = capacity_by_state(organisation=organisation, gpu_class_ids=list(moved))
    for class_id, gpus in moved.items():
        by_state = capacity.setdefault(class_id, {})
        by_state[source] = by_state.get(source, 0) - gpus
        by_state[site.state] = by_state.get(site.state, 0) + gpus
    failure = _overcommitted(capacity, _open_hours(organisation=organisation, class_ids=list(moved)))
    if failure is None:
        return
    names = {**_hour_names(*failure), "state": source}
    message = _(
        "The site's capacity is needed in %(state)s: for hour %(hour)s on %(day)s your organisation has sold or "
        "offered %(committed)d GPUs of %(gpu_class)s that could not be delivered otherwise."
    ) % names
    raise ExchangeError("insufficient_capacity", message, {"state": [message]})
