"""A proposer that crashes between signing its block and sending it re-proposes the same
signed block after the restart (node/bft_proposer.py ``ProposalFile``), so the round is not
lost to its own signing guard; and a saved block for another position is never used."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from tests.unit.node.support import intkey_batches
from tests.unit.node.test_bft import (
    TIMEOUTS,
    Member,
    Network,
    all_committed,
    check_no_double_signing,
    check_no_fork_and_certified,
    make_consortium,
    run,
    start_driver,
    stop_driver,
    submit,
    wait_until,
    wall_ms,
)
from trusted_ledger.chain import decode_block
from trusted_ledger.node.bft import BftDriver
from trusted_ledger.node.bft_wire import WireProposal, decode_message
from trusted_ledger.node.catchup import OwnProposalFile

PATIENT = replace(TIMEOUTS, propose_ms=20_000)
"""The others wait long in round 0: the restarted proposer must win round 0 on its own."""


@dataclass
class MemoryProposalFile:
    data: bytes | None = None
    saves: int = 0

    def save(self, block: bytes) -> None:
        self.data, self.saves = block, self.saves + 1

    def load(self) -> bytes | None:
        return self.data


def _driver(network: Network, member: Member, files: list[MemoryProposalFile]) -> BftDriver:
    restored = member.persisted[-1] if member.persisted else None
    driver = BftDriver(
        store=member.store,
        pool=member.pool,
        publisher=member.publisher,
        validator=member.validator,
        signer=member.signer,
        transport=network.transport(member.index),
        persist=member.persisted.append,
        restored=restored,
        timeouts=PATIENT,
        clock_ms=wall_ms,  # a rebuilt block differs (time): only the saved one is round 0's
        resend_interval_ms=100,
        idle_poll_ms=20,
        on_commit=lambda block, cert: member.committed.append((block, cert)),
        proposal_file=files[member.index],
    )
    member.driver = driver
    driver.start()
    return driver


def test_a_proposer_crashing_before_sending_re_proposes_its_signed_block() -> None:
    async def scenario() -> None:
        network, members = make_consortium()
        files = [MemoryProposalFile() for _ in members]
        cut: list[int] = []  # the proposer that "crashed" as it was sending its proposal
        deliver = network.deliver

        def crash_at_first_proposal(src: int, data: bytes) -> None:
            if not cut and isinstance(decode_message(data), WireProposal):
                # The crash instant: the block is signed (guard) and saved, nothing is sent,
                # and nothing after this is carried out (a stopped driver performs no action).
                cut.append(src)
                stop_driver(members[src])
                return
            deliver(src, data)

        network.deliver = crash_at_first_proposal  # type: ignore[method-assign]
        for member in members:
            _driver(network, member, files)
        batches = intkey_batches(3)
        submit(members, batches)
        await wait_until(lambda: bool(cut), timeout_s=10)
        proposer = members[cut[0]]
        saved = files[proposer.index].data
        assert saved is not None, "the block must be on disk before the proposal is sent"
        saved_block = decode_block(saved)
        assert saved_block.header.consensus_round == 0
        _driver(network, proposer, files)
        await wait_until(all_committed(members, batches), timeout_s=15)
        for member in members:
            stop_driver(member)
        for member in members:
            block = member.store.block_at(1)
            assert block is not None and block.id == saved_block.id
            certificate = member.store.certificate(block.id)
            assert certificate is not None and certificate.consensus_round == 0
            check_no_double_signing(member)
        check_no_fork_and_certified(members)

    run(scenario)


def test_a_saved_block_for_another_position_is_not_reused() -> None:
    async def scenario() -> None:
        network, members = make_consortium()
        submit(members, intkey_batches(2))
        for member in members:
            start_driver(network, member)
        await wait_until(lambda: all(m.head_number >= 1 for m in members), timeout_s=15)
        first = members[0].store.block_at(1)
        assert first is not None
        for member in members:
            stop_driver(member)
        # Height 2 now: an old block of height 1 (even our own) must not be proposed again.
        files = [MemoryProposalFile(first.encode()) for _ in members]
        batches = intkey_batches(2)
        submit(members, batches)
        for member in members:
            _driver(network, member, files)
        await wait_until(all_committed(members, batches), timeout_s=15)
        for member in members:
            stop_driver(member)
        check_no_fork_and_certified(members)
        assert sum(f.saves for f in files) >= 1  # the real proposer saved its new block

    run(scenario)


def test_own_proposal_file_round_trips_and_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "consensus" / "own-proposal.block"
    keeper = OwnProposalFile(path)
    assert keeper.load() is None
    keeper.save(b"first")
    keeper.save(b"second block")
    assert keeper.load() == b"second block"
    assert not path.with_name(path.name + ".tmp").exists()
