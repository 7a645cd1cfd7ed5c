"""The ``asset`` family's handler: the rules of each action (records in ``asset``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from trusted_ledger.errors import InvalidTransaction
from trusted_ledger.processing.codec import decode_map
from trusted_ledger.processing.context import HandlerContext
from trusted_ledger.processing.families.asset import (
    ACTIONS,
    FAMILY_NAME,
    FAMILY_VERSION,
    KINDS,
    AssetClass,
    Holding,
    account_field,
    asset_class_address,
    code_field,
    decimals_max,
    holding_address,
    integer_field,
    text_field,
    units_max,
)
from trusted_ledger.processing.handler import TransactionHandler
from trusted_ledger.txn import Transaction

Payload = Mapping[str, Any]


class _Action:
    """One transaction's view of the state it touches."""

    def __init__(self, context: HandlerContext, signer: str, code: str) -> None:
        self.context = context
        self.signer = signer
        self.code = code

    def asset_class(self) -> AssetClass:
        address = asset_class_address(self.code)
        data = self.context.get_state([address]).get(address)
        if data is None:
            raise InvalidTransaction(f"asset {self.code!r} does not exist")
        return AssetClass.decode(data)

    def issuer_class(self) -> AssetClass:
        asset = self.asset_class()
        if asset.issuer != self.signer:
            raise InvalidTransaction(f"only the issuer of {self.code!r} may do this")
        return asset

    def holding(self, account: str) -> Holding:
        address = holding_address(self.code, account)
        data = self.context.get_state([address]).get(address)
        return Holding() if data is None else Holding.decode(data)

    def put_holding(self, account: str, holding: Holding) -> None:
        address = holding_address(self.code, account)
        if holding == Holding():  # an empty, unfrozen holding is no holding: keep state small
            self.context.delete_state([address])
        else:
            self.context.set_state({address: holding.encode()})

    def put_class(self, asset: AssetClass) -> None:
        self.context.set_state({asset_class_address(self.code): asset.encode()})

    def unfrozen_holding(self, account: str, role: str) -> Holding:
        holding = self.holding(account)
        if holding.frozen:
            raise InvalidTransaction(f"the {role}'s account is frozen for {self.code!r}")
        return holding

    def event(self, event_name: str, **attributes: str | int) -> None:
        pairs = [("asset", self.code), *((k, str(v)) for k, v in sorted(attributes.items()))]
        self.context.add_event(f"asset/{event_name}", pairs)


def _amount(payload: Payload) -> int:
    amount = payload.get("Amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= units_max:
        raise InvalidTransaction(f"Amount must be an integer in 1..{units_max} (smallest units)")
    return amount


def _create(action: _Action, payload: Payload) -> None:
    kind = text_field(payload, "Kind")
    if kind not in KINDS:
        raise InvalidTransaction(f"Kind must be one of {', '.join(KINDS)}")
    decimals = integer_field(payload, "Decimals", 0, decimals_max)
    address = asset_class_address(action.code)
    if action.context.get_state([address]):
        raise InvalidTransaction(f"asset {action.code!r} already exists")
    action.put_class(AssetClass(action.code, kind, decimals, action.signer, 0))
    action.event("created", issuer=action.signer, kind=kind)


def _issue(action: _Action, payload: Payload) -> None:
    asset = action.issuer_class()
    to, amount = account_field(payload, "To"), _amount(payload)
    if asset.supply + amount > units_max:
        raise InvalidTransaction(f"supply of {action.code!r} would exceed {units_max}")
    holding = action.unfrozen_holding(to, "recipient")
    action.put_class(
        AssetClass(asset.code, asset.kind, asset.decimals, asset.issuer, asset.supply + amount)
    )
    action.put_holding(to, Holding(holding.balance + amount, False))
    action.event("issued", to=to, amount=amount)


def _transfer(action: _Action, payload: Payload) -> None:
    action.asset_class()  # the asset must exist
    to, amount = account_field(payload, "To"), _amount(payload)
    if to == action.signer:
        raise InvalidTransaction("sender and recipient are the same account")
    source = action.unfrozen_holding(action.signer, "sender")
    if source.balance < amount:
        raise InvalidTransaction(
            f"insufficient balance: {source.balance} < {amount} of {action.code!r}"
        )
    target = action.unfrozen_holding(to, "recipient")
    # Balances cannot overflow: both sum to at most the supply, itself at most units_max.
    action.put_holding(action.signer, Holding(source.balance - amount, False))
    action.put_holding(to, Holding(target.balance + amount, False))
    action.event("transferred", sender=action.signer, to=to, amount=amount)


def _redeem(action: _Action, payload: Payload) -> None:
    asset = action.issuer_class()
    amount = _amount(payload)
    holding = action.unfrozen_holding(action.signer, "issuer")
    if holding.balance < amount:
        raise InvalidTransaction(f"the issuer holds {holding.balance} < {amount} to redeem")
    action.put_class(
        AssetClass(asset.code, asset.kind, asset.decimals, asset.issuer, asset.supply - amount)
    )
    action.put_holding(action.signer, Holding(holding.balance - amount, False))
    action.event("redeemed", amount=amount)


def _set_frozen(action: _Action, payload: Payload, frozen: bool) -> None:
    action.issuer_class()
    account = account_field(payload, "Account")
    holding = action.holding(account)
    if holding.frozen == frozen:
        raise InvalidTransaction(f"the account is already {'frozen' if frozen else 'unfrozen'}")
    action.put_holding(account, Holding(holding.balance, frozen))
    action.event("frozen" if frozen else "unfrozen", account=account)


_RULES: dict[str, Callable[[_Action, Payload], None]] = {
    "create": _create,
    "issue": _issue,
    "transfer": _transfer,
    "redeem": _redeem,
    "freeze": lambda action, payload: _set_frozen(action, payload, True),
    "unfreeze": lambda action, payload: _set_frozen(action, payload, False),
}
assert tuple(_RULES) == ACTIONS


class AssetHandler(TransactionHandler):
    """Creates, issues, transfers, redeems and freezes asset holdings."""

    @property
    def family_name(self) -> str:
        return FAMILY_NAME

    @property
    def family_versions(self) -> tuple[str, ...]:
        return (FAMILY_VERSION,)

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        payload = decode_map(transaction.payload, "asset payload")
        name = payload.get("Action")
        rule = _RULES.get(name) if isinstance(name, str) else None
        if rule is None:
            raise InvalidTransaction(f"Action must be one of {', '.join(ACTIONS)}")
        rule(_Action(context, transaction.header.signer_public_key, code_field(payload)), payload)
