"""Writes of the clearing house: the only code that posts journal entries.

One module per capability: ``ledger`` (posting, accounts, deposits,
reservations, the trade's novation entry), ``allocation`` (delivery tickets
and site use), ``delivery`` (delivery and settlement), ``cash`` (withdrawals,
payout accounts, the clearing house's claims).

The modules import one another in one direction only (``ledger`` imports
none of them, ``cash`` imports ``ledger``, ``delivery`` imports ``cash`` and
``ledger``) and none imports this package, so there is no cycle: one import
list at the top.
"""

from clearing.services.allocation import delivery_tickets_for_trade
from clearing.services.cash import (
    four_eyes_refusal,
    withdrawal_approve,
    withdrawal_cancel,
    withdrawal_pending_account,
    withdrawal_reject,
    withdrawal_request,
)
from clearing.services.delivery import (
    deliveries_settle,
    delivery_access_post,
    delivery_confirm,
    delivery_dispute,
    dispute_resolve,
    may_read_access,
    ticket_settle,
    tickets_visible_to,
)
from clearing.services.ledger import (
    LedgerAccounts,
    Posting,
    _cash_deposit_book,
    accounts_for,
    cash_deposit_book,
    cash_release,
    cash_reserve,
    futures_trade_posting,
    house_account,
    ledger_accounts,
    ledger_post,
    ledger_post_all,
    release_posting,
    reserve_posting,
    trade_posting,
)

__all__ = [
    "LedgerAccounts",
    "Posting",
    "_cash_deposit_book",
    "accounts_for",
    "cash_deposit_book",
    "cash_release",
    "cash_reserve",
    "deliveries_settle",
    "delivery_access_post",
    "delivery_confirm",
    "delivery_dispute",
    "delivery_tickets_for_trade",
    "dispute_resolve",
    "four_eyes_refusal",
    "futures_trade_posting",
    "house_account",
    "ledger_accounts",
    "ledger_post",
    "ledger_post_all",
    "may_read_access",
    "release_posting",
    "reserve_posting",
    "ticket_settle",
    "tickets_visible_to",
    "trade_posting",
    "withdrawal_approve",
    "withdrawal_cancel",
    "withdrawal_pending_account",
    "withdrawal_reject",
    "withdrawal_request",
]
