"""BFT consensus among the member nodes (issue 6): Tendermint as a sans-I/O state machine.

``Consensus`` takes verified messages, timer expiries and the application's answers and
returns actions (sign and broadcast, request or validate a block, schedule a timer, decide,
report misbehaviour); ``signing`` says what each message signs and at which guard position.
The protocol as implemented, and what a driver must do: docs/consensus.md.
"""

from __future__ import annotations

from trusted_ledger.consensus.machine import Consensus
from trusted_ledger.consensus.signing import (
    NIL_BLOCK_ID,
    PREVOTE_DOMAIN,
    message_digest,
    precommit_digest,
    prevote_digest,
    proposal_digest,
    signing_position,
)
from trusted_ledger.consensus.types import (
    NIL,
    STEP_PRECOMMIT,
    STEP_PREVOTE,
    STEP_PROPOSE,
    Action,
    Decide,
    Message,
    PersistentState,
    Proposal,
    ReportMisbehaviour,
    RequestValue,
    ScheduleTimeout,
    SignAndBroadcast,
    Step,
    TimeoutConfig,
    TimeoutKind,
    ValidateBlock,
    VoteKind,
    VoteMessage,
)
from trusted_ledger.consensus.votes import future_rounds_max

__all__ = [
    "NIL",
    "NIL_BLOCK_ID",
    "PREVOTE_DOMAIN",
    "STEP_PRECOMMIT",
    "STEP_PREVOTE",
    "STEP_PROPOSE",
    "Action",
    "Consensus",
    "Decide",
    "Message",
    "PersistentState",
    "Proposal",
    "ReportMisbehaviour",
    "RequestValue",
    "ScheduleTimeout",
    "SignAndBroadcast",
    "Step",
    "TimeoutConfig",
    "TimeoutKind",
    "ValidateBlock",
    "VoteKind",
    "VoteMessage",
    "future_rounds_max",
    "message_digest",
    "precommit_digest",
    "prevote_digest",
    "proposal_digest",
    "signing_position",
]
