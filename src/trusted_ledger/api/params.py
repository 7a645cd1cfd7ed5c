"""Every query and path parameter of the API, each with its schema and its parser.

A parser refuses with ``RequestInvalid`` naming the parameter and what is allowed, so a bad
parameter is always a 400 that says how to fix it, never a 500 or a silently ignored value.
Bounds are named here with their units.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Literal

from trusted_ledger.api.openapi import Param
from trusted_ledger.api.render import ADDRESS, ADDRESS_PREFIX, BLOCK_ID, ID
from trusted_ledger.errors import RequestInvalid

ids_per_request_max = 1000
"""Ids in one /batch_statuses or /receipts request (Sawtooth's bound on a status query)."""
page_limit_max = 1000
page_limit_default = 100
wait_seconds_max = 60.0
"""Longest a /batch_statuses long-poll is held: below common proxy idle timeouts."""
wait_seconds_bare = 30.0
"""The wait of a bare ``wait`` with no value (Sawtooth's default)."""

_ID = re.compile(r"[0-9a-f]{128}")
_BLOCK_ID = re.compile(r"[0-9a-f]{64}")
_ADDRESS = re.compile(r"[0-9a-f]{70}")
_PREFIX = re.compile(r"(?:[0-9a-f]{2}){0,35}")
_DECIMAL = re.compile(r"[0-9]{1,20}")


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 40 else repr(value[:37] + "...")


def parse_ids(name: str, text: str | None) -> list[str]:
    """Comma-separated ids, each 128 lowercase hex chars; repeats are answered once."""
    if not text:
        raise RequestInvalid(
            "give at least one id (128 lowercase hex chars), several separated by commas",
            parameter=name,
        )
    ids = list(dict.fromkeys(text.split(",")))
    if len(ids) > ids_per_request_max:
        raise RequestInvalid(
            f"{len(ids)} ids, at most {ids_per_request_max} per request",
            hint="split the ids over several requests, or POST them as a JSON array",
            parameter=name,
        )
    check_ids(name, ids)
    return ids


def check_ids(name: str, ids: list[str]) -> None:
    for index, identifier in enumerate(ids):
        if not _ID.fullmatch(identifier):
            raise RequestInvalid(
                f"entry {index} ({_shown(identifier)}) is not an id: ids are 128 lowercase hex "
                "chars (a header signature)",
                parameter=name,
            )


def _single_id(name: str) -> Callable[[str | None], str]:
    def parse(text: str | None) -> str:
        if text is None or not _ID.fullmatch(text):
            shown = "nothing" if text is None else _shown(text)
            raise RequestInvalid(
                f"{shown} is not an id: 128 lowercase hex chars (a header signature)",
                parameter=name,
            )
        return text

    return parse


def _integer(name: str, low: int, high: int, default: int | None) -> Callable[[str | None], int]:
    def parse(text: str | None) -> int:
        if text is None and default is not None:
            return default
        if text is None or not _DECIMAL.fullmatch(text) or not low <= int(text) <= high:
            shown = "nothing" if text is None else _shown(text)
            raise RequestInvalid(
                f"{shown} is not allowed: give a decimal integer in [{low}, {high}]",
                parameter=name,
            )
        return int(text)

    return parse


def _boolean(name: str, default: bool) -> Callable[[str | None], bool]:
    def parse(text: str | None) -> bool:
        if text is None:
            return default
        if text not in ("true", "false"):
            raise RequestInvalid(f"{_shown(text)} is not allowed: true or false", parameter=name)
        return text == "true"

    return parse


def _matching(
    name: str, pattern: re.Pattern[str], what: str, default: str | None
) -> Callable[[str | None], str | None]:
    def parse(text: str | None) -> str | None:
        if text is None:
            return default
        if not pattern.fullmatch(text):
            raise RequestInvalid(f"{_shown(text)} is not allowed: {what}", parameter=name)
        return text

    return parse


def _required(parse: Callable[[str | None], str | None], name: str) -> Callable[[str | None], str]:
    def checked(text: str | None) -> str:
        value = parse(text)
        if value is None:
            raise RequestInvalid("is required", parameter=name)
        return value

    return checked


def _wait(text: str | None) -> float:
    """Absent: 0 (answer now); bare ``wait``: 30 s; else seconds, capped at 60."""
    if text is None:
        return 0.0
    if text == "":
        return wait_seconds_bare
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise RequestInvalid(
            f"{_shown(text)} is not allowed: a number of seconds >= 0 (at most "
            f"{wait_seconds_max:g} are waited), or no value for {wait_seconds_bare:g}",
            parameter="wait",
        )
    return min(seconds, wait_seconds_max)


def _format(text: str | None) -> Literal["json", "raw"]:
    if text is None or text == "json":
        return "json"
    if text == "raw":
        return "raw"
    raise RequestInvalid(f"{_shown(text)} is not allowed: json or raw", parameter="format")


_HEX_BLOCK_ID = "a block id: 64 lowercase hex chars"
_HEX_ADDRESS = "an address: 70 lowercase hex chars"

IDS = Param[list[str]](
    "id",
    "query",
    f"Comma-separated ids (128 hex chars each), at most {ids_per_request_max}.",
    {"type": "string"},
    lambda text: parse_ids("id", text),
    required=True,
)
WAIT = Param[float](
    "wait",
    "query",
    f"Seconds to hold the answer until every batch is COMMITTED or INVALID (bare: "
    f"{wait_seconds_bare:g}, at most {wait_seconds_max:g}).",
    {"type": "number", "minimum": 0},
    _wait,
)
HEAD = Param[str | None](
    "head",
    "query",
    "Block id to read at (default: the chain head).",
    BLOCK_ID,
    _matching("head", _BLOCK_ID, _HEX_BLOCK_ID, None),
)
LIMIT = Param[int](
    "limit",
    "query",
    f"Entries per page, 1..{page_limit_max} (default {page_limit_default}).",
    {"type": "integer", "minimum": 1, "maximum": page_limit_max, "default": page_limit_default},
    _integer("limit", 1, page_limit_max, page_limit_default),
)
STATE_PREFIX = Param[str | None](
    "address",
    "query",
    "Hex address prefix (even length, 0..70 chars; default: all state).",
    ADDRESS_PREFIX,
    _matching("address", _PREFIX, "an even number (0..70) of lowercase hex chars", ""),
)
STATE_START = Param[str | None](
    "start",
    "query",
    "First address to include (a page's paging.next_position).",
    ADDRESS,
    _matching("start", _ADDRESS, _HEX_ADDRESS, None),
)
BLOCK_START = Param[int | None](
    "start",
    "query",
    "Block number to list from (default: the head, or 0 when reverse=false).",
    {"type": "integer", "minimum": 0},
    lambda text: None if text is None else _integer("start", 0, 2**64 - 1, None)(text),
)
REVERSE = Param[bool](
    "reverse",
    "query",
    "true (default): newest first, from start downwards; false: upwards from start.",
    {"type": "boolean", "default": True},
    _boolean("reverse", True),
)
BLOCK_FORMAT = Param[Literal["json", "raw"]](
    "format",
    "query",
    "json (default) or raw: the stored block encoding (docs/formats.md §6.3).",
    {"type": "string", "enum": ["json", "raw"]},
    _format,
)
BLOCK_ID_PATH = Param[str](
    "block_id", "path", "Block id (64 hex chars).", BLOCK_ID,
    _required(_matching("block_id", _BLOCK_ID, _HEX_BLOCK_ID, None), "block_id"), required=True,
)  # fmt: skip
BLOCK_NUM_PATH = Param[int](
    "block_num", "path", "Block number.", {"type": "integer", "minimum": 0},
    _integer("block_num", 0, 2**64 - 1, None), required=True,
)  # fmt: skip
BATCH_ID_PATH = Param[str](
    "batch_id", "path", "Batch id (128 hex chars).", ID, _single_id("batch_id"), required=True
)
TRANSACTION_ID_PATH = Param[str](
    "transaction_id", "path", "Transaction id (128 hex chars).", ID,
    _single_id("transaction_id"), required=True,
)  # fmt: skip
ADDRESS_PATH = Param[str](
    "address", "path", "State address (70 hex chars).", ADDRESS,
    _required(_matching("address", _ADDRESS, _HEX_ADDRESS, None), "address"), required=True,
)  # fmt: skip
