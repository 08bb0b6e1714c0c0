"""Writes of the clearing house: the only code that posts journal entries.

One module per capability: ``ledger`` (posting, accounts, deposits,
reservations, the trade's novation entry); delivery, settlement, withdrawals
and the fee schedule each get their own module beside it.
"""

from clearing.services.ledger import (
    LedgerAccounts,
    Posting,
    _cash_deposit_book,
    accounts_for,
    cash_deposit_book,
    cash_release,
    cash_reserve,
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
    "house_account",
    "ledger_accounts",
    "ledger_post",
    "ledger_post_all",
    "release_posting",
    "reserve_posting",
    "trade_posting",
]

# --- delivery and settlement (issue 4) ---
from clearing.services.allocation import delivery_tickets_for_trade  # noqa: E402
from clearing.services.delivery import (  # noqa: E402
    deliveries_settle,
    delivery_access_post,
    delivery_confirm,
    delivery_dispute,
    dispute_resolve,
    may_read_access,
    ticket_settle,
    tickets_visible_to,
)

__all__ += [
    "deliveries_settle",
    "delivery_access_post",
    "delivery_confirm",
    "delivery_dispute",
    "delivery_tickets_for_trade",
    "dispute_resolve",
    "may_read_access",
    "ticket_settle",
    "tickets_visible_to",
]

# --- withdrawals (issue 4) ---
from clearing.services.cash import (  # noqa: E402
    four_eyes_refusal,
    withdrawal_approve,
    withdrawal_cancel,
    withdrawal_pending_account,
    withdrawal_reject,
    withdrawal_request,
)

__all__ += [
    "four_eyes_refusal",
    "withdrawal_approve",
    "withdrawal_cancel",
    "withdrawal_pending_account",
    "withdrawal_reject",
    "withdrawal_request",
]
