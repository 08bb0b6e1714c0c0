"""Trader controls (docs/trader-controls.md): the kill switch and
cancel-on-disconnect. Mass cancel itself is ``orders.orders_cancel_all``.

The kill switch is engaged in two transactions:

1. lock the organisation row (step 2 of the lock order, ``exchange.locks``)
   and write the engaged ``KillSwitch`` row; commit. From this commit on, the
   order service refuses the organisation's submits and amends: it reads
   the switch after it has locked the same row, so an order either locked
   the row first (and is in the book when step 2 looks) or sees the switch.
2. cancel every resting order of the organisation
   (``orders.organisation_orders_cancel``: instruments, then the
   organisation, as every order transaction). Nothing new can rest any more,
   so when it returns none of the organisation's orders rests.

One transaction for both would have to lock the organisation before the
instruments, against the lock order. Between the two commits (milliseconds)
an already resting order can still be filled by another member's order, as
on the power exchanges, where the stop of order entry comes first and the
deletion of the book follows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.selectors import membership_for
from accounts.services import audit_record, trading_gate_check
from exchange.errors import ExchangeError
from exchange.locks import lock_organisations
from market.models import KillSwitch, Order
from market.services import orders

if TYPE_CHECKING:
    from accounts.models import Organisation, User

REASON_MAX_LENGTH = 200


def _owner_organisation(user: User) -> Organisation:
    return trading_gate_check(membership_for(user), "owner").organisation


def kill_switch_engaged(*, organisation: Organisation) -> KillSwitch | None:
    return KillSwitch.objects.filter(organisation=organisation, lifted_at__isnull=True).first()


def kill_switch_refusal(*, organisation_id: int) -> ExchangeError | None:
    """The order service's refusal while the switch is on (for screens that show it before an order is sent)."""
    return orders._stopped(organisation_id)


def kill_switch_engage(*, user: User, reason: str = "", organisation: Organisation | None = None) -> list[Order]:
    """Engage the kill switch of the user's organisation (its owners), or,
    with ``organisation``, of that organisation (an operator: the admin
    checks who may). Answers the orders it cancelled. Engaging it again
    while it is on only cancels what rests (nothing, normally)."""
    if organisation is None:
        organisation = _owner_organisation(user)
    if len(reason) > REASON_MAX_LENGTH:
        raise ExchangeError("invalid", _("The request is invalid."),
                            {"reason": [_("Use at most %(max)d characters.") % {"max": REASON_MAX_LENGTH}]})
    _engage_tx(organisation=organisation, user=user, reason=reason)
    return orders.organisation_orders_cancel(organisation_id=organisation.pk, actor=user,
                                             reason=orders.REASON_KILL_SWITCH)


@transaction.atomic(durable=True)
def _engage_tx(*, organisation: Organisation, user: User, reason: str) -> None:
    lock_organisations([organisation.pk])
    if kill_switch_engaged(organisation=organisation) is not None:
        return
    try:
        with transaction.atomic():
            switch = KillSwitch.objects.create(organisation=organisation, engaged_at=timezone.now(),
                                               engaged_by=user, reason=reason)
    except IntegrityError:  # pragma: no cover - the organisation lock serialises engagers
        return
    audit_record(actor=user, action="kill_switch_engaged", organisation=organisation, obj=switch,
                 before={}, after={"engaged_at": switch.engaged_at.isoformat()}, reason=reason)


def kill_switch_lift(*, user: User, organisation: Organisation | None = None) -> KillSwitch:
    """Lift the kill switch (owners of the organisation; with
    ``organisation``, an operator). ``not_found`` when it is not on."""
    if organisation is None:
        organisation = _owner_organisation(user)
    return _lift_tx(organisation=organisation, user=user)


@transaction.atomic(durable=True)
def _lift_tx(*, organisation: Organisation, user: User) -> KillSwitch:
    lock_organisations([organisation.pk])
    switch = kill_switch_engaged(organisation=organisation)
    if switch is None:
        raise ExchangeError("not_found", _("The kill switch is not on."))
    switch.lifted_at, switch.lifted_by = timezone.now(), user
    switch.save(update_fields=["lifted_at", "lifted_by"])
    audit_record(actor=user, action="kill_switch_lifted", organisation=organisation, obj=switch,
                 before={"engaged_at": switch.engaged_at.isoformat()},
                 after={"lifted_at": switch.lifted_at.isoformat()})
    return switch


def cancel_on_disconnect_check(*, user: User) -> int:
    """May this user's WebSocket session ask for cancel-on-disconnect? The
    same rule as cancelling (traders and owners); answers the organisation id."""
    return orders.cancel_gate(user=user).organisation_id


def cancel_on_disconnect(*, user_id: int, organisation_id: int) -> list[Order]:
    """The session ended: cancel the organisation's resting orders that this
    user placed (any channel, any instrument). The exchange acts (actor None)
    on the member's standing instruction (reason ``cancel_on_disconnect``)."""
    return orders.organisation_orders_cancel(organisation_id=organisation_id, actor=None,
                                             reason=orders.REASON_CANCEL_ON_DISCONNECT, placed_by_id=user_id)
