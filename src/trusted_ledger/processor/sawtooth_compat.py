"""Makes the published Sawtooth Python SDK (``sawtooth-sdk`` 1.2.5) import and run here.

The SDK's last release predates Python 3.10 and protobuf 4, and breaks on both:

1. its generated ``sawtooth_sdk.protobuf.*_pb2`` modules build descriptors with the old
   descriptor API, which protobuf >= 4 refuses ("Descriptors cannot be created directly");
2. ``sawtooth_sdk.messaging.stream`` (the SDK's ZMQ connection) uses asyncio calls removed
   from Python: ``@asyncio.coroutine`` (gone in 3.11), ``asyncio.Queue(loop=...)`` (3.10)
   and ``asyncio.Task.all_tasks`` (3.9).

``install()`` (or importing this module, which calls it) puts a finder first on
``sys.meta_path`` that fixes both *before* the SDK's modules load, without editing them:

1. ``sawtooth_sdk.protobuf.<name>_pb2`` is served from ``trusted_ledger.txn.protos.<name>_pb2``
   for the modules we compile from the Sawtooth 1.x wire specification (validator,
   processor, state_context, events, network, transaction, batch, transaction_receipt):
   the same message names, field numbers and enum values, so the SDK's code and a
   handler's ``request.header.signer_public_key`` work unchanged. The alias is a module of
   its own sharing our classes, so each protobuf type is registered once. The SDK's other
   ``_pb2`` modules (client, consensus, settings ...) are not on a processor's path and are
   left alone; importing one still fails as before.
2. ``sawtooth_sdk.messaging.stream`` is executed with ``import asyncio`` resolving to a thin
   view of asyncio that adds back the three removed calls, for that module only: nothing
   else in the process sees a changed asyncio.

Handler code written for the SDK does not change: import this module (or call ``install()``)
first, then use ``sawtooth_sdk.processor`` as documented by Sawtooth. The SDK's own
dependencies that matter on a processor's path are ``pyzmq`` and ``protobuf`` (both ours);
its ``processor.log``/``processor.config`` helpers also need ``colorlog``, ``toml`` and
``PyYAML``, and ``sawtooth_signing`` needs ``secp256k1`` (a compiled binding); a processor
needs none of those, so ``scripts/setup.sh`` installs the SDK with ``--no-deps``.
docs/processor-kit.md shows the whole recipe.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import sys
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

SDK_PROTOBUF_PACKAGE = "sawtooth_sdk.protobuf"
OUR_PROTOBUF_PACKAGE = "trusted_ledger.txn.protos"
SERVED_PROTOBUF_MODULES = (
    "batch_pb2",
    "events_pb2",
    "network_pb2",
    "processor_pb2",
    "state_context_pb2",
    "transaction_pb2",
    "transaction_receipt_pb2",
    "validator_pb2",
)
"""The SDK's ``_pb2`` modules we serve; the tests compare each with the SDK's own
descriptors, message by message and field by field."""
PARTLY_SERVED = {"network_pb2": ("PingRequest", "PingResponse")}
"""Modules of which we compile only what a processor uses: our network.proto leaves out
Sawtooth's gossip messages, so ``sawtooth_sdk.protobuf.network_pb2.DisconnectMessage`` (and
its kin) raise AttributeError."""
STREAM_MODULE = "sawtooth_sdk.messaging.stream"


# --- what the SDK's stream module sees as ``asyncio`` ----------------------------------------


def _legacy_coroutine(func: Callable[..., Any]) -> Callable[..., Any]:
    """``@asyncio.coroutine`` as Python 3.4-3.10 had it, for generator-based coroutines.

    A generator function is marked as an iterable coroutine (``types.coroutine``) so that
    it may ``yield from`` futures and native coroutines, and wrapped in a native coroutine
    function, because asyncio's ``Task`` and ``run_coroutine_threadsafe`` accept only
    native coroutines in current Pythons. A plain function (the SDK has one) becomes a
    coroutine function returning its result, awaited first if it is awaitable.
    """
    if inspect.isgeneratorfunction(func):
        generator_function: Callable[..., Any] = types.coroutine(func)

        @functools.wraps(func)
        async def run_generator(*args: Any, **kwargs: Any) -> Any:
            return await generator_function(*args, **kwargs)

        return run_generator

    @functools.wraps(func)
    async def run_plain(*args: Any, **kwargs: Any) -> Any:
        result = func(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    return run_plain


class _LoopArgumentQueue(asyncio.Queue[Any]):
    """``asyncio.Queue`` that accepts (and ignores) the ``loop`` argument removed in 3.10:
    a queue now binds to the running loop on first use, which is the loop the SDK passed."""

    def __init__(self, maxsize: int = 0, *, loop: object = None) -> None:
        del loop
        super().__init__(maxsize)


class _TaskWithAllTasks(asyncio.Task[Any]):
    """``asyncio.Task`` with the ``Task.all_tasks(loop)`` class method removed in 3.9."""

    @staticmethod
    def all_tasks(loop: asyncio.AbstractEventLoop | None = None) -> set[asyncio.Task[Any]]:
        return asyncio.all_tasks(loop)


class _AsyncioForSawtoothSdk(types.ModuleType):
    """The real asyncio, plus the three calls the SDK's stream module still uses."""

    coroutine = staticmethod(_legacy_coroutine)
    Queue = _LoopArgumentQueue
    Task = _TaskWithAllTasks

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


_ASYNCIO_VIEW = _AsyncioForSawtoothSdk("asyncio")


def _import_with_asyncio_view(
    name: str,
    globals: Mapping[str, object] | None = None,
    locals: Mapping[str, object] | None = None,
    fromlist: Sequence[str] = (),
    level: int = 0,
) -> types.ModuleType:
    if name == "asyncio" and level == 0 and not fromlist:
        return _ASYNCIO_VIEW
    return builtins.__import__(name, globals, locals, fromlist, level)


# --- the import hooks -----------------------------------------------------------------------


class _AliasLoader(importlib.abc.Loader):
    """Creates ``sawtooth_sdk.protobuf.<name>_pb2`` as a module sharing our module's names."""

    def __init__(self, target: str) -> None:
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # the default module object; filled in by exec_module

    def exec_module(self, module: types.ModuleType) -> None:
        ours = importlib.import_module(self._target)
        for name, value in vars(ours).items():
            if not (name.startswith("__") and name.endswith("__")):
                setattr(module, name, value)
        module.__doc__ = f"Served by trusted_ledger.processor.sawtooth_compat from {self._target}."


class _StreamLoader(importlib.abc.Loader):
    """Executes the SDK's own stream module, with ``import asyncio`` giving the view above."""

    def __init__(self, original: importlib.abc.Loader) -> None:
        self._original = original

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._original.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        patched = dict(vars(builtins))
        patched["__import__"] = _import_with_asyncio_view
        module.__builtins__ = patched  # type: ignore[attr-defined]
        self._original.exec_module(module)


class SawtoothSdkFinder(importlib.abc.MetaPathFinder):
    """Redirects the SDK's processor-path modules; declines everything else."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package == SDK_PROTOBUF_PACKAGE and name in SERVED_PROTOBUF_MODULES:
            return importlib.util.spec_from_loader(
                fullname, _AliasLoader(f"{OUR_PROTOBUF_PACKAGE}.{name}")
            )
        if fullname == STREAM_MODULE:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None or spec.loader is None:
                return None  # no SDK installed: let the import fail as it would
            spec.loader = _StreamLoader(spec.loader)
            return spec
        return None


_FINDER = SawtoothSdkFinder()
_ZMQ_EVENT_LOOP_WARNING = "ZMQEventLoop and zmq.asyncio.install are deprecated"


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (idempotent).

    Call it before anything imports ``sawtooth_sdk``. Once an SDK ``_pb2`` module has
    failed to import, protobuf's descriptor pool holds half of its file and even our own
    modules of the same name fail to load ("duplicate symbol"); so the finder refuses to
    install over SDK modules already loaded, rather than fail later and obscurely.
    """
    if _FINDER in sys.meta_path:
        return
    loaded = [
        name
        for name in sys.modules
        if name == STREAM_MODULE or name.startswith(SDK_PROTOBUF_PACKAGE + ".")
    ]
    if loaded:
        raise ImportError(
            "trusted_ledger.processor.sawtooth_compat must be installed before sawtooth_sdk "
            f"is imported; already loaded: {', '.join(sorted(loaded))}"
        )
    sys.meta_path.insert(0, _FINDER)
    # The SDK creates pyzmq's ZMQEventLoop, deprecated (still working) since pyzmq 17; the
    # warning says nothing a processor's operator can act on.
    warnings.filterwarnings("ignore", message=_ZMQ_EVENT_LOOP_WARNING, category=DeprecationWarning)


def uninstall() -> None:
    """Remove the finder (modules it already served stay loaded)."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


install()
