"""``AssetClient``: the ``asset`` family (docs/families.md) from a holder's or issuer's seat.

Each action is one transaction in one batch signed by the client's key, so a batch id names
exactly one action and its status is that action's outcome. The payloads, inputs and outputs
come from the family's own ``*_operation`` helpers: the client cannot declare addresses the
handler does not expect.

Amounts travel in smallest units (integers). People write them in display units, with the
asset class's ``decimals`` placing the point (``12.50`` USD at 2 decimals is 1250 units);
``parse_amount`` and ``format_amount`` convert exactly, never through floats, and refuse a
precision the asset cannot hold rather than rounding someone's money.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from trusted_ledger.client.http import LedgerClient
from trusted_ledger.errors import InvalidInput, NodeBusy, NotFound
from trusted_ledger.processing.families.asset import (
    FAMILY_NAME,
    FAMILY_VERSION,
    KINDS,
    AssetClass,
    AssetOperation,
    Holding,
    account_field,
    asset_class_address,
    code_field,
    create_operation,
    decimals_max,
    freeze_operation,
    holding_address,
    issue_operation,
    redeem_operation,
    transfer_operation,
    units_max,
)
from trusted_ledger.txn import Batch, SigningKey, TransactionBuilder, build_batch

batches_per_submission_max = 100
"""Batches per POST in ``transfer_many``: well under the node's 256 per list, and small
enough that one refused list (pool full) costs little to send again."""
busy_retries_max = 8
busy_backoff_first_s = 0.5
busy_backoff_max_s = 10.0
payment_rows_max = 100_000
"""Bound on one payment file: its batches are built and held in memory before sending."""
_AMOUNT_PATTERN = re.compile(r"([0-9]+)(?:\.([0-9]+))?")


# --- amounts -------------------------------------------------------------------------------


def parse_amount(text: str, decimals: int, *, code: str = "the asset") -> int:
    """Smallest units of a positive amount written in display units (``"12.50"``)."""
    written = text.strip()
    match = _AMOUNT_PATTERN.fullmatch(written)
    if match is None:
        raise InvalidInput(f"amount {text!r} must be a positive decimal number such as 12 or 12.50")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > decimals:
        allowed = f"{decimals} decimal place{'s' if decimals != 1 else ''}"
        raise InvalidInput(
            f"amount {written} has {len(fraction)} decimal places but {code} allows {allowed}",
            hint=f"{code}'s smallest unit is 10^-{decimals}" if decimals else None,
        )
    units = int(whole + fraction.ljust(decimals, "0"))
    if not 1 <= units <= units_max:
        raise InvalidInput(
            f"amount {written} is out of range: it must be at least "
            f"{format_amount(1, decimals)} and at most {format_amount(units_max, decimals)}"
        )
    return units


def format_amount(units: int, decimals: int) -> str:
    """Display units with exactly ``decimals`` places (``1250``, 2 → ``"12.50"``)."""
    if units < 0:
        raise InvalidInput(f"amounts are never negative, got {units}")
    if decimals == 0:
        return str(units)
    digits = str(units).rjust(decimals + 1, "0")
    return f"{digits[:-decimals]}.{digits[-decimals:]}"


# --- payment files -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payment:
    """One row of a payment file: ``line`` is its 1-based line number, for messages."""

    line: int
    to: str
    units: int


def parse_payments(
    text: str,
    decimals: int,
    *,
    resolve_account: Callable[[str], str],
    sender: str | None = None,
    code: str = "the asset",
    source: str = "payments",
) -> list[Payment]:
    """Every row of a ``to,amount`` CSV, checked before anything is sent.

    Blank lines, ``#`` comments and a first row ``to,amount`` are skipped. All rows are
    checked and the first few faults reported together, each with its line number, so that
    one run finds them all; a file with any fault yields no payments at all.
    """
    payments: list[Payment] = []
    faults: list[str] = []
    rows = csv.reader(io.StringIO(text))
    for row in rows:
        line = rows.line_num
        cells = [cell.strip() for cell in row]
        if not cells or all(not cell for cell in cells) or cells[0].startswith("#"):
            continue
        if not payments and not faults and [c.lower() for c in cells] == ["to", "amount"]:
            continue
        try:
            payments.append(_payment_row(line, cells, decimals, resolve_account, sender, code))
        except InvalidInput as exc:
            faults.append(f"{source} line {line}: {exc}")
        if len(payments) > payment_rows_max:
            raise InvalidInput(f"{source} has more than {payment_rows_max} payments; split it")
    if faults:
        shown = "; ".join(faults[:5])
        more = f" (and {len(faults) - 5} more faulty lines)" if len(faults) > 5 else ""
        raise InvalidInput(f"{shown}{more}", hint="nothing was sent; fix the file and retry")
    if not payments:
        raise InvalidInput(f"{source} holds no payments (expected rows of to,amount)")
    return payments


def _payment_row(
    line: int,
    cells: list[str],
    decimals: int,
    resolve_account: Callable[[str], str],
    sender: str | None,
    code: str,
) -> Payment:
    if len(cells) != 2:
        raise InvalidInput(f"expected 2 fields (to,amount), found {len(cells)}")
    to = resolve_account(cells[0])
    if to == sender:
        raise InvalidInput("a transfer to the sender's own account is refused by the node")
    return Payment(line, to, parse_amount(cells[1], decimals, code=code))


# --- the client ----------------------------------------------------------------------------


class AssetClient:
    """Builds, signs and submits asset actions as ``signing_key``'s account."""

    def __init__(
        self,
        client: LedgerClient,
        signing_key: SigningKey,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.signing_key = signing_key
        self._builder = TransactionBuilder(signing_key, FAMILY_NAME, FAMILY_VERSION)
        self._sleep = sleep

    @property
    def account(self) -> str:
        """This client's account: its compressed public key."""
        return self.signing_key.public_key_hex

    def batch(self, operation: AssetOperation) -> Batch:
        """One signed batch holding the operation's one transaction."""
        transaction = self._builder.build(
            operation.payload, inputs=operation.inputs, outputs=operation.outputs
        )
        return build_batch(self.signing_key, [transaction])

    def _submit(self, operation: AssetOperation) -> str:
        return self.client.submit([self.batch(operation)])[0]

    def create(self, code: str, kind: str, decimals: int) -> str:
        """Create an asset class with this account as issuer; returns the batch id."""
        if kind not in KINDS:
            raise InvalidInput(f"asset kind {kind!r} must be one of {', '.join(KINDS)}")
        if not 0 <= decimals <= decimals_max:
            raise InvalidInput(f"decimals must be in 0..{decimals_max}, got {decimals}")
        return self._submit(create_operation(_code(code), kind, decimals))

    def issue(self, code: str, to: str, amount: int) -> str:
        return self._submit(issue_operation(_code(code), _account(to), _units(amount)))

    def transfer(self, code: str, to: str, amount: int) -> str:
        return self._submit(self.transfer_operation(code, to, amount))

    def transfer_operation(self, code: str, to: str, amount: int) -> AssetOperation:
        to = _account(to)
        if to == self.account:
            raise InvalidInput("a transfer to the sender's own account is refused by the node")
        return transfer_operation(_code(code), self.account, to, _units(amount))

    def redeem(self, code: str, amount: int) -> str:
        return self._submit(redeem_operation(_code(code), self.account, _units(amount)))

    def freeze(self, code: str, account: str) -> str:
        return self._submit(freeze_operation(_code(code), _account(account), frozen=True))

    def unfreeze(self, code: str, account: str) -> str:
        return self._submit(freeze_operation(_code(code), _account(account), frozen=False))

    def transfer_many(
        self,
        code: str,
        payments: Iterable[tuple[str, int]],
        chunk: int = batches_per_submission_max,
        *,
        on_submitted: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Bulk payments: one batch per transfer (so one bad row fails alone), sent in lists
        of at most ``chunk`` batches. A full pool (429) is waited out with the node's
        ``Retry-After`` or exponential backoff; the node takes a list whole or not at all,
        so sending the same list again is safe. Every batch is built (and every row checked)
        before the first is sent. Returns the batch ids in payment order."""
        if not 1 <= chunk <= batches_per_submission_max:
            raise InvalidInput(f"chunk must be in 1..{batches_per_submission_max}, got {chunk}")
        batches = [self.batch(self.transfer_operation(code, to, amount)) for to, amount in payments]
        ids: list[str] = []
        for start in range(0, len(batches), chunk):
            ids.extend(self._submit_patiently(batches[start : start + chunk]))
            if on_submitted is not None:
                on_submitted(len(ids))
        return ids

    def _submit_patiently(self, batches: Sequence[Batch]) -> list[str]:
        delay = busy_backoff_first_s
        for attempt in range(busy_retries_max + 1):
            try:
                return self.client.submit(batches)
            except NodeBusy as exc:
                if attempt == busy_retries_max:
                    raise
                pause = exc.retry_after_s if exc.retry_after_s is not None else delay
                self._sleep(min(pause, busy_backoff_max_s))
                delay = min(delay * 2, busy_backoff_max_s)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def balance(self, code: str, account: str | None = None) -> tuple[int, bool]:
        """``(balance in units, frozen)``; an account never credited holds 0, not frozen
        (the family deletes empty unfrozen holdings rather than storing zeros)."""
        owner = self.account if account is None else _account(account)
        return holding(self.client, _code(code), owner)

    def asset_info(self, code: str) -> AssetClass:
        return asset_info(self.client, code)


def holding(client: LedgerClient, code: str, account: str) -> tuple[int, bool]:
    """Read-only balance lookup, for callers without a signing key."""
    data = client.state(holding_address(_code(code), _account(account)))
    if data is None:
        return 0, False
    record = Holding.decode(data)
    return record.balance, record.frozen


def asset_info(client: LedgerClient, code: str) -> AssetClass:
    """The asset class record; ``NotFound`` when no such asset was created."""
    data = client.state(asset_class_address(_code(code)))
    if data is None:
        raise NotFound(
            f"asset {code} does not exist",
            hint="check the code, or create it with `trusted-ledger asset create`",
        )
    return AssetClass.decode(data)


def _code(code: str) -> str:
    return code_field({"Asset": code})


def _account(account: str) -> str:
    return account_field({"account": account}, "account")


def _units(amount: int) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= units_max:
        raise InvalidInput(f"amount must be an integer in 1..{units_max} units, got {amount!r}")
    return amount
