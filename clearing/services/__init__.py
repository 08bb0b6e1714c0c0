"""Writes of the clearing house: the only code that posts journal entries.

One module per capability: ``ledger`` (posting, accounts, deposits,
reservations, the trade's novation entry); delivery, settlement, withdrawals
and the fee schedule each get their own module beside it.
"""

from clearing.services.ledger import (
    _cash_deposit_book,
    accounts_for,
    cash_deposit_book,
    cash_release,
    cash_reserve,
    house_account,
    ledger_post,
    trade_book,
)

__all__ = [
    "_cash_deposit_book",
    "accounts_for",
    "cash_deposit_book",
    "cash_release",
    "cash_reserve",
    "house_account",
    "ledger_post",
    "trade_book",
]
