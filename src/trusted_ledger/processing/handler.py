"""The transaction handler interface and the registry that routes transactions to handlers.

Mirrors Sawtooth's ``TransactionHandler`` (family_name, family_versions, namespaces, apply):
a built-in family implements it in process; an external processor connected over ZMQ
(issue 5) will be one more implementation whose ``apply`` forwards TP_PROCESS and serves
the processor's state requests from the same ``HandlerContext``. ``apply`` may be called
from several threads at once (the parallel scheduler), each call with its own context.

What ``apply`` raises decides the outcome:
- returns: the transaction is valid and its context's writes, events and data apply;
- ``InvalidTransaction`` (or any ``InvalidInput``, such as an undeclared address): invalid
  on every node, the batch is rejected;
- ``InternalError`` or ``TemporarilyUnavailable``: this node failed, not the transaction;
  retried, and past the retry bound the block's execution fails.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterable

from trusted_ledger.errors import InvalidInput, UnknownFamily, UnsupportedFamilyVersion
from trusted_ledger.processing.context import HandlerContext
from trusted_ledger.state import namespace_prefix, validate_prefix
from trusted_ledger.txn import Transaction

families_max = 256
"""Families one registry serves; also bounds the metric label set (one label per family)."""


class TransactionHandler(abc.ABC):
    """One transaction family, in one or more versions."""

    @property
    @abc.abstractmethod
    def family_name(self) -> str: ...

    @property
    @abc.abstractmethod
    def family_versions(self) -> tuple[str, ...]: ...

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Address prefixes the family owns; by default the namespace of its name."""
        return (namespace_prefix(self.family_name),)

    @abc.abstractmethod
    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        """Check ``transaction`` and record its effects in ``context``."""


class HandlerRegistry:
    """Handlers keyed by (family name, family version); safe to read from many threads."""

    def __init__(self, handlers: Iterable[TransactionHandler] = ()) -> None:
        self._lock = threading.Lock()
        self._by_version: dict[tuple[str, str], TransactionHandler] = {}
        for handler in handlers:
            self.register(handler)

    def register(self, handler: TransactionHandler) -> None:
        """Add ``handler`` for each of its versions; a (family, version) is served once."""
        versions = tuple(handler.family_versions)
        if not versions:
            raise InvalidInput(f"handler for {handler.family_name!r} declares no versions")
        for prefix in handler.namespaces:
            validate_prefix(prefix)
        with self._lock:
            taken = [v for v in versions if (handler.family_name, v) in self._by_version]
            if taken:
                raise InvalidInput(
                    f"family {handler.family_name!r} version(s) {taken} already have a handler"
                )
            if handler.family_name not in self.families() and len(self.families()) >= families_max:
                raise InvalidInput(f"a registry serves at most families_max={families_max}")
            for version in versions:
                self._by_version[(handler.family_name, version)] = handler

    def unregister(self, family_name: str, version: str) -> None:
        with self._lock:
            self._by_version.pop((family_name, version), None)

    def families(self) -> frozenset[str]:
        return frozenset(family for family, _ in self._by_version)

    def lookup(self, family_name: str, version: str) -> TransactionHandler:
        """The handler for this family version, or a deterministic rejection saying why."""
        handler = self._by_version.get((family_name, version))
        if handler is not None:
            return handler
        known = sorted(v for family, v in self._by_version if family == family_name)
        if known:
            raise UnsupportedFamilyVersion(
                f"family {family_name!r} has no version {version!r}",
                hint=f"supported versions: {', '.join(known)}",
            )
        raise UnknownFamily(
            f"no transaction handler for family {family_name!r}",
            hint="the node serves: " + ", ".join(sorted(self.families())),
        )
