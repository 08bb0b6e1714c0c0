"""A long random sequence of postings, good and bad, against a shadow model:
after every step the books equal the model, balance to zero, reconcile with
their lines, and no guarded balance is negative. A refused step changes
nothing. (A seeded loop rather than a hypothesis state machine: hypothesis
and a per-test database transaction do not mix well.)"""

import random
from decimal import Decimal

import pytest

from clearing.models import GUARDED_KINDS, HOUSE_KINDS, Account, JournalEntry, JournalLine
from clearing.selectors import account_balance, trial_balance, unbalanced_entries, unreconciled_accounts
from clearing.services import accounts_for, cash_deposit_book, cash_release, cash_reserve, house_account, ledger_post
from exchange.errors import ExchangeError
from tests.clearing.conftest import make_organisation

pytestmark = pytest.mark.django_db

STEPS = 250


def random_amount(rng: random.Random) -> Decimal:
    # Mostly whole cents; sometimes sub-cent or zero, which must be refused.
    roll = rng.random()
    if roll < 0.05:
        return Decimal(rng.randint(1, 99_999)) / 1000
    if roll < 0.08:
        return Decimal("0.00")
    return Decimal(rng.randint(1, 200_000)) / 100


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_postings_never_lose_or_invent_a_cent(operator, seed):
    rng = random.Random(seed)
    organisations = [make_organisation(f"Zufall {seed}-{n} GmbH") for n in range(3)]
    member_accounts = [accounts_for(organisation=organisation) for organisation in organisations]
    all_accounts = [account for accounts in member_accounts for account in accounts.values()]
    all_accounts += [house_account(kind) for kind in HOUSE_KINDS]
    model = {account.pk: Decimal("0.00") for account in all_accounts}
    kinds = {account.pk: account.kind for account in all_accounts}
    outcomes: dict[str, int] = {}
    deposits = 0

    for step in range(STEPS):
        operation = rng.choice(["deposit", "deposit", "reserve", "release", "transfer", "unbalanced"])
        amount = random_amount(rng)
        who = rng.randrange(len(organisations))
        accounts = member_accounts[who]
        entries_before = JournalEntry.objects.count()
        deltas: list[tuple[Account, Decimal]]
        try:
            if operation == "deposit":
                deposits += 1
                cash_deposit_book(operator=operator, organisation=organisations[who], amount=amount,
                                  bank_reference=f"R{seed}-{deposits}")
                deltas = [(accounts["cash_available"], amount), (house_account("bank"), -amount)]
            elif operation == "reserve":
                cash_reserve(organisation=organisations[who], amount=amount, reference=f"order:{step}")
                deltas = [(accounts["cash_available"], -amount), (accounts["cash_reserved"], amount)]
            elif operation == "release":
                cash_release(organisation=organisations[who], amount=amount, reference=f"order:{step}")
                deltas = [(accounts["cash_reserved"], -amount), (accounts["cash_available"], amount)]
            else:
                # Any accounts at all, members' and the house's: a random entry
                # that balances, or (for "unbalanced") misses by a cent.
                targets = rng.sample(all_accounts, rng.randint(2, 4))
                amounts = [random_amount(rng) * rng.choice([1, -1]) for _ in targets[:-1]]
                amounts.append(-sum(amounts, Decimal("0.00")) + (Decimal("0.01") if operation == "unbalanced" else 0))
                deltas = list(zip(targets, amounts, strict=True))
                ledger_post(kind="correction", lines=deltas, reference=f"step:{step}")
        except ExchangeError as error:
            outcomes[error.code] = outcomes.get(error.code, 0) + 1
            assert JournalEntry.objects.count() == entries_before, f"step {step}: a refused {operation} wrote"
        else:
            outcomes["ok"] = outcomes.get("ok", 0) + 1
            assert JournalEntry.objects.count() == entries_before + 1
            for account, delta in deltas:
                model[account.pk] += delta

        # Member accounts keep a running balance; house accounts are the sum of their lines.
        balances = {account.pk: account_balance(account) for account in Account.objects.all()}
        assert balances == model, f"step {step} ({operation}): the books differ from the model"
        assert trial_balance() == 0
        assert not [pk for pk, balance in balances.items()
                    if kinds[pk] in GUARDED_KINDS and balance < 0]

    assert not unreconciled_accounts().exists()
    assert not unbalanced_entries().exists()
    assert JournalLine.objects.filter(amount=0).count() == 0
    # The sequence exercised every path, not just the happy one.
    assert outcomes.get("ok", 0) > 50
    assert outcomes.get("insufficient_funds", 0) > 10
    assert outcomes.get("invalid", 0) > 10
