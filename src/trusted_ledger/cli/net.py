"""``trusted-ledger net init|up|status|down``: a local consortium of member nodes on loopback.

``net init`` creates the nodes (node/consortium_init.py); ``net up`` starts each as a
background ``node run`` process - its own session, so closing the terminal or Ctrl-C in it
does not stop the net - with output in ``DIR/bank-x/node.log`` and its pid in
``DIR/bank-x/node.pid``; ``net down`` stops them. The pid file is the only record of a
running node, so every command checks that the pid still belongs to *that* node (its
command line names the member directory) before trusting or signalling it: a pid file left
by a crash may name a pid the system has since given to an unrelated process.

Everything here talks to the nodes only through their REST API (``/status``,
``/blocks/num/N``), exactly as an operator would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trusted_ledger.errors import InvalidInput, TemporarilyUnavailable
from trusted_ledger.node.consortium_init import (
    BASE_PORT_DEFAULT,
    CHAIN_ID_DEFAULT,
    ConsortiumOptions,
    LocalMember,
    consortium_exists,
    init_consortium,
    local_members,
)

NET_DIR_DEFAULT = Path("var/net")
NODES_DEFAULT = 4
READY_TIMEOUT_S_DEFAULT = 60.0
STOP_TIMEOUT_S_DEFAULT = 30.0
HTTP_TIMEOUT_S = 3.0
_POLL_S = 0.1
_READY_PREFIX = "node ready: "
_PEERS_PREFIX = "peers: "
_LOG_TAIL_LINES = 15


def register(subparsers: Any) -> None:
    net = subparsers.add_parser("net", help="a local consortium of member nodes on loopback")
    sub = net.add_subparsers(dest="net_command", metavar="ACTION", required=True)

    init = sub.add_parser(
        "init",
        help="create N member nodes: tokens, keys, members file, genesis certified by all",
    )
    _dir_option(init)
    _creation_options(init, nodes_default=NODES_DEFAULT)
    init.set_defaults(handler=_cmd_init)

    up = sub.add_parser(
        "up",
        help="start every member (net init first if DIR holds no consortium)",
        description="Members already running are left alone; the others are started in the "
        "background and awaited until they print 'node ready'.",
    )
    _dir_option(up)
    _creation_options(up, nodes_default=None)
    _member_option(up)
    up.add_argument(
        "--timeout", type=float, default=READY_TIMEOUT_S_DEFAULT, help="seconds to wait per start"
    )
    up.set_defaults(handler=_cmd_up)

    status = sub.add_parser("status", help="each member's height, round, peers and pool")
    _dir_option(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_cmd_status)

    down = sub.add_parser("down", help="stop members: SIGTERM, then SIGKILL after --timeout")
    _dir_option(down)
    _member_option(down)
    down.add_argument(
        "--timeout", type=float, default=STOP_TIMEOUT_S_DEFAULT, help="seconds before SIGKILL"
    )
    down.set_defaults(handler=_cmd_down)


def _dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=NET_DIR_DEFAULT,
        help=f"consortium directory ({NET_DIR_DEFAULT})",
    )


def _creation_options(parser: argparse.ArgumentParser, *, nodes_default: int | None) -> None:
    parser.add_argument(
        "--nodes",
        type=int,
        default=nodes_default,
        help=f"number of members (default {NODES_DEFAULT}; 4 tolerates one faulty member)",
    )
    parser.add_argument("--chain-id", default=CHAIN_ID_DEFAULT, help="name of the chain")
    parser.add_argument(
        "--base-port",
        type=int,
        default=BASE_PORT_DEFAULT,
        help="member i: peers on P+i, API on P+100+i, processors on P+200+i",
    )


def _member_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--member",
        action="append",
        default=[],
        metavar="NAME",
        help="only this member (repeatable; default: all)",
    )


def _selected(directory: Path, names: Sequence[str]) -> tuple[LocalMember, ...]:
    members = local_members(directory)
    if not names:
        return members
    known = {member.name: member for member in members}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InvalidInput(
            f"no member {unknown[0]!r} in {directory}", hint=f"members: {', '.join(known)}"
        )
    return tuple(known[name] for name in names)


# --- processes --------------------------------------------------------------------------


def _read_pid(member: LocalMember) -> int | None:
    try:
        text = member.pid_path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _is_node_process(pid: int, member: LocalMember) -> bool:
    """Whether ``pid`` is alive (not a zombie) and is ``node run`` of this member."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child that exited
    proc = Path("/proc") / str(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
        return False
    if state in ("Z", "X"):
        return False
    wanted = str(member.directory.resolve()).encode()
    return b"node" in argv and b"run" in argv and wanted in argv


def running_pid(member: LocalMember) -> int | None:
    """The pid of this member's live node process, or None (a stale pid file is removed)."""
    pid = _read_pid(member)
    if pid is None:
        return None
    if _is_node_process(pid, member):
        return pid
    member.pid_path.unlink(missing_ok=True)
    return None


def _start(member: LocalMember) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``node run`` for ``member``; return it and where its output begins in the log."""
    member.log_path.touch(mode=0o600)
    offset = member.log_path.stat().st_size
    node_dir = str(member.directory.resolve())
    with member.log_path.open("ab") as log:
        argv = [sys.executable, "-m", "trusted_ledger.cli", "node", "run", "--dir", node_dir]
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    member.pid_path.write_text(f"{process.pid}\n", encoding="ascii")
    return process, offset


def _log_since(member: LocalMember, offset: int) -> str:
    with member.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode("utf-8", "replace")


def _log_tail(member: LocalMember, offset: int) -> str:
    lines = _log_since(member, offset).splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(f"    {line}" for line in lines)


@dataclass
class _Starting:
    member: LocalMember
    process: subprocess.Popen[bytes]
    offset: int
    url: str | None = None


def _await_ready(starting: list[_Starting], timeout_s: float) -> list[str]:
    """Wait until every started node printed its ready line; the failures, described."""
    deadline = time.monotonic() + timeout_s
    failures: list[str] = []
    waiting = list(starting)
    while waiting:
        for entry in list(waiting):
            for line in _log_since(entry.member, entry.offset).splitlines():
                if line.startswith(_READY_PREFIX):
                    entry.url = line[len(_READY_PREFIX) :].split()[0]
            if entry.url is not None:
                waiting.remove(entry)
            elif entry.process.poll() is not None:
                waiting.remove(entry)
                entry.member.pid_path.unlink(missing_ok=True)
                failures.append(
                    f"{entry.member.name} exited with status {entry.process.returncode} "
                    f"before it was ready; {entry.member.log_path}:\n"
                    f"{_log_tail(entry.member, entry.offset)}"
                )
        if waiting and time.monotonic() > deadline:
            for entry in waiting:
                failures.append(
                    f"{entry.member.name} not ready in {timeout_s:g} s (still running, pid "
                    f"{entry.process.pid}); {entry.member.log_path}:\n"
                    f"{_log_tail(entry.member, entry.offset)}"
                )
            break
        if waiting:
            time.sleep(_POLL_S)
    return failures


def _stop(members: Sequence[LocalMember], timeout_s: float) -> list[tuple[str, str]]:
    """SIGTERM every running member, wait, SIGKILL what is left: (name, outcome) each."""
    signalled: dict[str, int] = {}
    outcome: dict[str, str] = {}
    for member in members:
        pid = running_pid(member)
        if pid is None:
            outcome[member.name] = "not running"
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        signalled[member.name] = pid
    by_name = {member.name: member for member in members}
    deadline = time.monotonic() + timeout_s
    while signalled and time.monotonic() < deadline:
        for name, pid in list(signalled.items()):
            if not _is_node_process(pid, by_name[name]):
                outcome[name] = f"stopped (pid {pid})"
                del signalled[name]
        if signalled:
            time.sleep(_POLL_S)
    for name, pid in signalled.items():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _is_node_process(pid, by_name[name]):
            time.sleep(_POLL_S)
        outcome[name] = f"killed after {timeout_s:g} s (pid {pid})"
    for member in members:
        member.pid_path.unlink(missing_ok=True)
    return [(member.name, outcome[member.name]) for member in members]


# --- the nodes' API ---------------------------------------------------------------------


def _get_json(url: str) -> Any:
    """The ``data`` of a GET, or None if the node does not answer (it may be stopped)."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
            return json.loads(response.read()).get("data")
    except (OSError, ValueError, urllib.error.URLError):
        return None


def _field(mapping: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``mapping``, or None where any part is missing (the
    ``consensus`` section of ``/status`` exists in bft mode only; a stopped node has none)."""
    value = mapping
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@dataclass(frozen=True)
class MemberStatus:
    name: str
    pid: int | None
    api_url: str
    peer_address: str
    answered: bool
    height: int | None
    block_id: str | None
    consensus_round: int | None
    peers_connected: int | None
    pending_batches: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "member": self.name,
            "running": self.pid is not None,
            "pid": self.pid,
            "api_url": self.api_url,
            "peer_address": self.peer_address,
            "answered": self.answered,
            "height": self.height,
            "block_id": self.block_id,
            "round": self.consensus_round,
            "peers_connected": self.peers_connected,
            "pending_batches": self.pending_batches,
        }


def member_status(member: LocalMember) -> MemberStatus:
    pid = running_pid(member)
    data = _get_json(f"{member.api_url}/status") if pid is not None else None
    head = _field(data, "head")
    return MemberStatus(
        name=member.name,
        pid=pid,
        api_url=member.api_url,
        peer_address=member.peer_address,
        answered=data is not None,
        height=_field(head, "block_num"),
        block_id=_field(head, "block_id"),
        consensus_round=_field(data, "consensus.round"),
        peers_connected=_field(data, "consensus.peers_connected"),
        pending_batches=_field(data, "pending_batches"),
    )


@dataclass(frozen=True)
class Agreement:
    height: int | None
    """The lowest height every answering member has committed (None: none answered)."""
    block_ids: dict[str, str | None]
    """Each answering member's block id at that height (None: it did not answer)."""

    @property
    def agreed(self) -> bool:
        ids = set(self.block_ids.values())
        return len(ids) == 1 and None not in ids


def agreement(members: Sequence[LocalMember], statuses: Sequence[MemberStatus]) -> Agreement:
    """Whether the answering members hold the same block at their lowest common height."""
    answering = [
        (member, status)
        for member, status in zip(members, statuses, strict=True)
        if status.height is not None
    ]
    if not answering:
        return Agreement(None, {})
    height = min(status.height for _, status in answering if status.height is not None)
    block_ids: dict[str, str | None] = {}
    for member, _ in answering:
        block = _get_json(f"{member.api_url}/blocks/num/{height}")
        block_ids[member.name] = _field(block, "header_signature")
    return Agreement(height, block_ids)


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [list(header)] + [[_cell(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print(
            "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        )


# --- commands ---------------------------------------------------------------------------


def _options(args: argparse.Namespace, nodes: int) -> ConsortiumOptions:
    return ConsortiumOptions(
        directory=args.dir, nodes=nodes, chain_id=args.chain_id, base_port=args.base_port
    )


def _cmd_init(args: argparse.Namespace) -> int:
    result = init_consortium(_options(args, args.nodes))
    print(f"consortium of {len(result.members)} created in {args.dir}")
    print(f"  chain          {args.chain_id}, genesis {result.genesis_block_id.hex()}")
    print(f"  certified by   {result.votes} of {len(result.members)} founders")
    print(f"  members file   {result.members_file}")
    print(f"  admin key      {result.admin_key_file} (client key of the first admin)")
    _print_table(
        ("member", "API", "peer address"),
        [(m.name, m.api_url, m.peer_address) for m in result.members],
    )
    print(f"start it with:   trusted-ledger net up --dir {args.dir}")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    if not consortium_exists(args.dir):
        if args.member:
            raise InvalidInput(f"{args.dir} holds no consortium to start members of")
        _cmd_init(argparse.Namespace(**{**vars(args), "nodes": args.nodes or NODES_DEFAULT}))
    members = _selected(args.dir, args.member)
    if args.nodes is not None and not args.member and args.nodes != len(local_members(args.dir)):
        raise InvalidInput(
            f"{args.dir} holds a consortium of {len(local_members(args.dir))}, not {args.nodes}",
            hint="omit --nodes, or choose another --dir for a new consortium",
        )
    starting: list[_Starting] = []
    for member in members:
        pid = running_pid(member)
        if pid is not None:
            # Never a second process on one node directory: two nodes on one guard and one
            # database is what the guard exists to refuse, but better never asked.
            print(f"{member.name}: already running (pid {pid}), not started", file=sys.stderr)
            continue
        process, offset = _start(member)
        starting.append(_Starting(member, process, offset))
    failures = _await_ready(starting, args.timeout)
    statuses = [member_status(member) for member in members]
    _print_table(
        ("member", "API", "peer address", "height", "pid"),
        [(s.name, s.api_url, s.peer_address, s.height, s.pid) for s in statuses],
    )
    print(
        f"logs: {args.dir}/<member>/node.log; stop with: trusted-ledger net down --dir {args.dir}"
    )
    if failures:
        for failure in failures:
            print(f"trusted-ledger: {failure}", file=sys.stderr)
        raise TemporarilyUnavailable(f"{len(failures)} of {len(starting)} members did not start")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    members = local_members(args.dir)
    statuses = [member_status(member) for member in members]
    agreed = agreement(members, statuses)
    if args.json:
        print(
            json.dumps(
                {
                    "members": [status.as_json() for status in statuses],
                    "common_height": agreed.height,
                    "block_ids": agreed.block_ids,
                    "agreed": agreed.agreed,
                },
                indent=2,
            )
        )
        return 0
    _print_table(
        ("member", "running", "API", "height", "round", "peers", "pending"),
        [
            (
                s.name,
                f"pid {s.pid}" if s.pid is not None else "no",
                s.api_url,
                s.height,
                s.consensus_round,
                s.peers_connected,
                s.pending_batches,
            )
            for s in statuses
        ],
    )
    if agreed.height is None:
        print("no member answered")
    elif agreed.agreed:
        block_id = next(iter(agreed.block_ids.values()))
        print(
            f"all {len(agreed.block_ids)} answering members agree at height {agreed.height}: "
            f"block {_cell(block_id)[:16]}"
        )
    else:
        print(f"DISAGREEMENT at height {agreed.height}:")
        for name, block_id in agreed.block_ids.items():
            print(f"  {name}: {_cell(block_id)}")
        return 1
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    members = _selected(args.dir, args.member)
    for name, outcome in _stop(members, args.timeout):
        print(f"{name}: {outcome}")
    return 0
