"""The exchange's one lock order (docs/architecture.md, "One lock order").

Every transaction that changes money or book state takes its row locks in
this order, each kind at most once and all before its first write:

1. the instrument row (``market.services.orders``: it serialises one book);
2. organisation rows, ascending id (``lock_organisations``);
3. ledger account rows, ascending id (``clearing.services.ledger``: the
   balances of one transaction are changed in one pass in id order).

A transaction may skip a level, never go back up one. Rows that are locked
only to serialise writers take ``FOR NO KEY UPDATE``
(``select_for_update(no_key=True)``): unlike ``FOR UPDATE`` it does not
conflict with the ``FOR KEY SHARE`` lock that every insert of a row pointing
at the locked one (an order, a journal line) takes on it.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from exchange.rawsql import lock_clause, placeholders


def lock_organisations(ids: Iterable[int | None]) -> list[int]:
    """Lock the organisation rows ``ids`` (``None`` is skipped) FOR NO KEY
    UPDATE in ascending id, in one statement; answers the ids locked.

    PostgreSQL locks the rows as the sorted scan returns them, so two
    transactions locking overlapping sets wait for each other in id order and
    cannot deadlock. Call it once per transaction, with every organisation
    whose accounts, capacity or commitments the transaction will change.
    """
    from accounts.models import Organisation

    wanted = sorted({pk for pk in ids if pk is not None})
    if not wanted:
        return []
    # Plain SQL: the order path locks organisations in every transaction.
    table = connection.ops.quote_name(Organisation._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table} WHERE id IN ({placeholders(len(wanted))}) "  # noqa: S608
                       f"ORDER BY id{lock_clause(table)}", wanted)
        return [pk for (pk,) in cursor.fetchall()]
