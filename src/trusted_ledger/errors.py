"""Every exception the package raises, grouped by what the caller does about it.

- ``InvalidInput``: the caller sent something wrong (bad bytes, bad argument, bad proof). Fix
  the input; retrying the same call fails the same way. Deterministic on every node.
- ``VerificationFailed``: a signature, proof or hash chain did not check out. Treat the data
  as untrustworthy.
- ``ConfigurationError``: the operator's set-up is wrong (missing module, bad profile, bad PIN
  source). The message says which setting and how to fix it.
- ``TemporarilyUnavailable``: a resource (HSM, disk, peer) is gone for now; retrying later
  may succeed.
- ``InternalError``: a bug or a broken build. Report it.

Every class has a ``hint`` (what to do) where one is known, and ``__str__`` includes it.
"""

from __future__ import annotations


class TrustedLedgerError(Exception):
    """Base of every error the package raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


# --- what the caller sent is wrong -------------------------------------------------------


class InvalidInput(TrustedLedgerError, ValueError):
    """An argument or a piece of input data is malformed or out of range."""


class IndexOutOfRange(InvalidInput, IndexError):
    """A leaf index, tree size or position lies outside what exists."""


# --- data that did not verify ------------------------------------------------------------


class VerificationFailed(TrustedLedgerError):
    """A signature, proof or hash chain did not check out."""


class InvalidProof(VerificationFailed):
    """A Merkle inclusion or consistency proof does not prove what it claims."""


# --- txn: transactions and batches -------------------------------------------------------
# Two groups by what the caller does: ``MalformedBatch`` (an InvalidInput: the bytes or fields
# break the format, reject with 400) and ``BatchVerificationFailed`` (a VerificationFailed: a
# hash or signature does not check out, the data is untrustworthy). Both carry where the fault
# is: batch index, transaction index and field, each ``None`` when it does not apply.


class BatchListFault(TrustedLedgerError):
    """Mixin: an error at a place in a batch list, named in the message."""

    def __init__(
        self,
        message: str,
        *,
        batch_index: int | None = None,
        transaction_index: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = []
        if batch_index is not None:
            where.append(f"batch {batch_index}")
        if transaction_index is not None:
            where.append(f"transaction {transaction_index}")
        if field is not None:
            where.append(field)
        super().__init__(f"{', '.join(where)}: {message}" if where else message, hint=hint)
        self.batch_index = batch_index
        self.transaction_index = transaction_index
        self.field = field


class MalformedBatch(BatchListFault, InvalidInput):
    """A batch list, batch or transaction breaks the wire format or a field rule."""


class SizeLimitExceeded(MalformedBatch):
    """Too many bytes or too many items; checked before parsing where the bytes allow."""


class MalformedEncoding(MalformedBatch):
    """Bytes that do not parse as the expected protobuf message, or carry unknown fields."""


class InvalidField(MalformedBatch):
    """A header field has the wrong format (key, id, family, address, nonce...)."""


class TransactionIdMismatch(MalformedBatch):
    """A batch header's transaction ids differ from the ids of the batch's transactions."""


class DuplicateTransaction(MalformedBatch):
    """One transaction id appears twice in a batch list, or twice in a dependency list."""


class BatcherKeyMismatch(MalformedBatch):
    """A transaction names a batcher key other than the key that signed its batch."""


class ReplayedTransaction(MalformedBatch):
    """A transaction id that the chain has already committed."""


class MissingDependency(MalformedBatch):
    """A declared dependency is neither committed nor earlier in the same batch list."""


class BatchVerificationFailed(BatchListFault, VerificationFailed):
    """A hash or signature in a batch list does not check out."""


class PayloadHashMismatch(BatchVerificationFailed):
    """A transaction's payload does not hash to the header's payload_sha512."""


class InvalidSignature(BatchVerificationFailed):
    """A header signature is not a valid secp256k1 signature by the named key."""


class HighSSignature(InvalidSignature):
    """A signature with s > n/2: valid maths, but the malleable twin of a low-S signature."""


# --- the operator's set-up ---------------------------------------------------------------


class ConfigurationError(TrustedLedgerError):
    """A setting, file or installed component is missing or wrong."""


# --- transient conditions ----------------------------------------------------------------


class TemporarilyUnavailable(TrustedLedgerError):
    """A resource is unavailable for now; the same call may succeed later."""


# --- bugs and broken builds --------------------------------------------------------------


class InternalError(TrustedLedgerError):
    """Something that should not happen did: a bug or a broken installation."""


class NativeExtensionError(InternalError):
    """The compiled hashing extension is missing, stale, or returned an unexpected status."""


# --- storage (grouped under the bases above by what the caller does) ----------------------


class StorageClosed(InternalError):
    """A database handle was used after ``close()``: a lifecycle bug in the caller."""


class UnknownColumnFamily(InvalidInput):
    """A column family was named that the database was not opened with."""


class DatabaseNotFound(ConfigurationError):
    """No database exists at the data directory and creating one was not asked for."""


class NotADatabase(ConfigurationError):
    """The data directory holds something that is not a (readable) RocksDB database."""


class DatabaseLocked(TemporarilyUnavailable):
    """Another process (or handle) holds the database's LOCK file."""


class StorageFailure(TemporarilyUnavailable):
    """The storage engine reported an I/O failure (disk full, permissions, ...)."""


# --- state --------------------------------------------------------------------------------


class InvalidAddress(InvalidInput):
    """A state address or address prefix is malformed (length, characters, case)."""


class UndeclaredAddress(InvalidInput):
    """A transaction touched an address outside its declared inputs or outputs.

    Deterministic: every node rejects the transaction the same way (Sawtooth's
    ``InvalidTransaction`` for undeclared access).
    """


class UndeclaredInput(UndeclaredAddress):
    """A read of an address not covered by the transaction's declared inputs."""


class UndeclaredOutput(UndeclaredAddress):
    """A write or delete of an address not covered by the transaction's declared outputs."""


class UnknownStateRoot(InvalidInput):
    """A state root was asked for that this node's state store does not hold."""


class StateCorrupted(InternalError):
    """A stored state node is missing, malformed, or does not hash to its key."""


# --- processing: handlers, schedulers, executor ---------------------------------------------
# Sawtooth's split: ``InvalidTransaction`` rejects deterministically (every node reaches the
# same verdict, the transaction's batch is recorded invalid); ``TransactionProcessingFailed``
# means this node could not finish a block (a handler kept raising InternalError): nothing is
# recorded, the block is retried or abandoned locally.


class InvalidTransaction(InvalidInput):
    """A transaction is invalid on every node alike: bad payload, failed business rule."""


class FamilyNotServed(TemporarilyUnavailable):
    """No handler serves the transaction's family version on this node *now*.

    Never a verdict: which families a node serves depends on which external processors are
    connected to it, so rejecting would make nodes disagree. The batch waits in the pool
    (its status says why) until a processor registers, as in Sawtooth.
    """


class UnknownFamily(FamilyNotServed):
    """No handler is registered for the transaction's family name."""


class UnsupportedFamilyVersion(FamilyNotServed):
    """The family is known but not in the transaction's family version."""


class SubmissionNotPermitted(InvalidTransaction):
    """The identity policy does not let the signer submit to the transaction's family."""


class HandlerLimitExceeded(InvalidTransaction):
    """A handler emitted too many or too large events or receipt data entries."""


class TransactionProcessingFailed(InternalError):
    """A block could not be executed: a handler raised InternalError past its retry bound.

    Not a verdict on the transaction: the block must not be recorded from this execution.
    """

    def __init__(self, message: str, *, transaction_id: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.transaction_id = transaction_id


# --- processor: the external transaction processor kit -------------------------------------


class ValidatorUnavailable(TemporarilyUnavailable):
    """The processor's node did not answer in time or the connection to it dropped.

    Within a transaction this is never a verdict: the kit answers INTERNAL_ERROR while the
    connection stands (the node retries), and nothing once it dropped (the node re-dispatches
    the transaction to a processor it can reach).
    """


# --- chain: blocks, commit certificates, the chain store, the batch pool ------------------


class MalformedBlock(InvalidInput):
    """Block or header bytes break the chain format (docs/formats.md §6), or a field is out
    of its named bound. Deterministic: every node rejects the same bytes the same way."""


class MalformedCertificate(InvalidInput):
    """Commit certificate bytes break the chain format, or votes are unsorted or repeated."""


class BlockRejected(VerificationFailed):
    """A well-formed block that does not check out; the subclass names the mismatch."""


class BlockDoesNotExtendHead(BlockRejected):
    """Wrong chain id, number or previous block id for the head it should extend."""


class BlockSignatureInvalid(BlockRejected):
    """The proposer is no member, or its signature over the block id does not verify."""


class BatchRootMismatch(BlockRejected):
    """The header's batch Merkle root or batch count differs from the batches carried."""


class BlockReplaysCommitted(BlockRejected):
    """The block carries a batch or transaction that is already committed (or twice)."""


class BlockContainsInvalidBatch(BlockRejected):
    """Re-execution found a batch the proposer should have left out."""


class StateRootMismatch(BlockRejected):
    """Re-execution gives another state root than the header claims (invariant 2)."""


class CertificateInvalid(VerificationFailed):
    """A commit certificate binds another block, lacks a quorum, or holds a bad vote."""


class ChainCorrupted(InternalError):
    """The chain store contradicts itself on open (head block missing, torn, unreadable
    state root): restore from backup or re-sync; never start on it."""


class PoolFull(TemporarilyUnavailable):
    """The pending batch pool is at its count or byte bound (HTTP 429): retry later."""


class ProposalRefused(TemporarilyUnavailable):
    """The publisher found no consensus round at this height the signing guard allows."""


# --- custody: HSM keys, signing guard, key-usage audit ------------------------------------


class SigningRefused(InvalidInput):
    """The signing guard refused: a different digest was already signed at this position, or
    the position lies below the watermark. Retrying the same request is refused again."""


class HsmProfileError(ConfigurationError):
    """An HSM profile (``hsm_profiles/*.toml``) is missing, malformed or incomplete."""


class HsmModuleNotFound(ConfigurationError):
    """The PKCS#11 module file named by the profile does not exist or cannot be loaded."""


class TokenNotFound(ConfigurationError):
    """No token with the configured label is present in the module."""


class PinRejected(ConfigurationError):
    """The token refused the PIN (wrong, locked or expired)."""


class PinSourceError(ConfigurationError):
    """The PIN source is unusable: unset variable, unsafe file permissions, no terminal."""


class MechanismUnsupported(ConfigurationError):
    """The token does not offer a mechanism the profile needs."""


class KeyNotFound(ConfigurationError):
    """No key with the requested label on the token."""


class KeyPolicyViolation(ConfigurationError):
    """A key's attributes break custody policy (extractable, not generated on the token)."""


class GuardStateMissing(ConfigurationError):
    """The signing guard's state file is missing; it is never recreated silently."""


class SignatureInvalid(VerificationFailed):
    """A signature does not verify under the given public key."""


class GuardStateCorrupted(VerificationFailed):
    """The signing guard's state file failed its integrity check; signing is refused."""


class AuditTrailInvalid(VerificationFailed):
    """The key-usage audit trail is broken: a gap, an edited record or a bad checkpoint.

    ``record`` is the 0-based line number where it broke (the sequence number, in a sound
    trail), or -1 when the whole file is unusable.
    """

    def __init__(self, message: str, *, record: int, hint: str | None = None) -> None:
        super().__init__(f"record {record}: {message}", hint=hint)
        self.record = record


class HsmUnavailable(TemporarilyUnavailable):
    """The token is gone (device removed, session lost); the pool re-initialises with backoff."""


class SignerBusy(TemporarilyUnavailable):
    """The request queue of the module's owner thread is full, or the wait timed out."""


class HsmModuleError(InternalError):
    """The PKCS#11 module returned an error custody does not expect."""


# --- api: the REST API (each class is one HTTP status; docs/api.md) ------------------------


class RequestInvalid(InvalidInput):
    """A query parameter, path segment or JSON body the API cannot accept (HTTP 400).

    ``parameter`` names what was wrong, so a client can fix exactly that."""

    def __init__(self, message: str, *, parameter: str, hint: str | None = None) -> None:
        super().__init__(f"{parameter}: {message}", hint=hint)
        self.parameter = parameter


class ResourceNotFound(InvalidInput):
    """No block, batch, transaction, receipt or state value under the id asked for (404)."""


class RequestTooLarge(InvalidInput):
    """A request body larger than the route's bound (HTTP 413)."""


class UnsupportedContentType(InvalidInput):
    """A request body of a media type the route does not take (HTTP 415)."""


class NodeNotReady(TemporarilyUnavailable):
    """The node has no genesis block yet, is catching up, or is shutting down (HTTP 503)."""


# --- client: the REST client library and its commands ---------------------------------------
# HTTP answers become the base classes by what the caller does: 400/404 are the request's
# fault (InvalidInput), 429/503 and an unreachable node pass (TemporarilyUnavailable), a 5xx is
# the node's bug (InternalError). Each carries the node's own message. A 503 is the API's own
# ``NodeNotReady`` (above), which means the same on both sides of the wire.


class RequestRejected(InvalidInput):
    """The node refused the request as malformed (HTTP 400, 405, 413, 415)."""

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class NotFound(InvalidInput):
    """The node has no such block, batch, transaction, receipt or state value (HTTP 404)."""


class NodeBusy(TemporarilyUnavailable):
    """The node's pending pool is full (HTTP 429); ``retry_after_s`` is its advice, if any."""

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


class NodeUnreachable(TemporarilyUnavailable):
    """No answer: connection refused or reset, unknown host, or a timeout."""


class NodeError(InternalError):
    """The node answered with a server error other than 503: a bug on the node's side."""


class UnexpectedResponse(ConfigurationError):
    """The answer is not the REST API's JSON: ``--url`` probably names another service."""


class KeyFileError(ConfigurationError):
    """A client key file is missing, malformed, or readable by other users."""


class KeyFileExists(KeyFileError):
    """``keygen`` would overwrite an existing key file."""


# --- processing: external processors (Sawtooth's TP protocol over ZMQ; docs/processors.md) --


class ProcessorProtocolError(InvalidInput):
    """A processor sent a frame or message that breaks the protocol (size, encoding, type,
    order); the server drops that processor and goes on serving the others."""


class ProcessorRegistrationRefused(InvalidInput):
    """A TP_REGISTER_REQUEST the server answers with ERROR; the message says which rule."""


class ProcessorRejectedTransaction(InvalidTransaction):
    """The processor answered INVALID_TRANSACTION: a deterministic rejection, its message
    is the reason recorded for the batch."""


class ProcessorInternalError(InternalError):
    """The processor answered INTERNAL_ERROR: this node's processor failed, not the
    transaction; the runner retries with a fresh context, within its bound."""


class ProcessorUnavailable(FamilyNotServed):
    """No live processor is registered for the family version (none ever, or every one was
    dropped): the transaction waits until one registers."""


class ProcessorBusy(TemporarilyUnavailable):
    """Every processor of the family version stayed at its occupancy for the whole request
    timeout, or the server's outgoing queue is full."""


class ProcessorServerFailed(ConfigurationError):
    """The processor endpoint cannot be bound (address in use, bad endpoint) or the server
    thread is not running."""


# --- testing: the deterministic simulation (testing/sim; docs/simulation.md) -----------------


class SimulationViolation(InternalError):
    """A checker of a simulated run found an invariant broken (a fork, a bad certificate,
    diverging state roots, a stalled chain): a bug in consensus or in the simulator. The
    run's report names the seed that replays it exactly."""


class SimulationLimitExceeded(InternalError):
    """A simulated run outgrew one of its bounds (pending events, a node's buffers): a storm
    of timers or messages, which is a bug, not a load to be absorbed."""


class SimulationConfigInvalid(InvalidInput):
    """A simulation configuration that cannot be run (more Byzantine members than the
    membership tolerates, an unknown behaviour, a partition that never heals...)."""


# --- network: the authenticated peer transport (docs/network.md) ------------------------------
# Every class carries ``reason``: a short name from a closed set (the metric label and the log
# field), so that a remote peer can never grow the label set. The caller's move: close the
# connection, log the reason, and (for a member) reconnect later.


class PeerFault(TrustedLedgerError):
    """Mixin: a failure of one peer connection, named by a ``reason`` from a closed set."""

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class PeerProtocolError(PeerFault, InvalidInput):
    """A peer sent bytes that break the wire format (length, encoding, message type or
    order): the connection is closed, the server goes on serving the others."""


class HandshakeRefused(PeerFault, VerificationFailed):
    """A well-formed handshake that does not check out: wrong chain or version, a signature
    that does not verify, a transcript that does not decrypt, a key that is no member."""


class ChannelBroken(PeerFault, VerificationFailed):
    """A transport frame failed authentication (tampered, replayed, reordered or forged):
    nothing more is read from that connection."""


class PeerDisconnected(PeerFault, TemporarilyUnavailable):
    """The connection is closed (by either side, a timeout or a full queue); reconnect."""


# --- node: the BFT driver and its consensus wire format (docs/bft-driver.md) ------------------


class MalformedConsensusMessage(InvalidInput):
    """Consensus message bytes from a peer that break the wire format (magic, version, kind,
    a length or bound, trailing bytes); the message names the field. The driver drops the
    message and counts it: one bad peer message never stops consensus."""


# --- node: the consortium (members file, catch-up wire; docs/consortium.md) -------------------


class MalformedCatchUpMessage(InvalidInput):
    """A BLOCK_REQUEST or BLOCK_RESPONSE payload that breaks its format (magic, version, a
    length or bound, trailing bytes): the peer that sent it is disconnected."""


# --- operations: REST API access over TLS (docs/operations.md, issue 7) ----------------------


class ClientNotAuthorized(InvalidInput):
    """The REST API refused a request because the client's TLS certificate is missing or not
    among the clients configured for it (``api.write_clients`` / ``api.read_clients``):
    HTTP 403. The message says which list and what the client presented."""


# --- proofs: inclusion, state and audit-trail proofs (issue #7; docs/formats.md §8) ---------


class ProofMalformed(InvalidInput):
    """A proof document that cannot be read: not JSON, a missing or badly typed field, bad
    hex, an unknown ``type`` or ``version``, a bound exceeded. ``field`` names the field."""

    def __init__(self, message: str, *, field: str, hint: str | None = None) -> None:
        super().__init__(f"{field}: {message}", hint=hint)
        self.field = field


class ProofRejected(InvalidProof):
    """A well-formed proof that does not prove what it claims: a hash, path, signature or
    certificate does not check out. ``field`` names the part that failed."""

    def __init__(self, message: str, *, field: str, hint: str | None = None) -> None:
        super().__init__(f"{field}: {message}", hint=hint)
        self.field = field


# --- reliability: hardware faults (docs/reliability.md §4, issue #8) -------------------------


class StorageNeedsRestart(InternalError):
    """The database failed a write and, reopened, shows that the failed write reached the
    disk after all: the process's view of the chain and pool may disagree with the disk, so
    the node stops (status 70) and a restart reloads both from the disk."""
