"""Typed errors: one root, and subclasses that say whose fault a failure is.

Callers catch :class:`PeerError` to drop bad input from the network without
crashing, :class:`UsageError` to fix their own call, :class:`CryptoError` for
anything a key or a tag refused.  Every message says what was wrong and what
to do about it.
"""

from __future__ import annotations


class VolliError(Exception):
    """Root of every error volli_nb raises on purpose."""


# --- the remote peer sent something we refuse --------------------------------


class PeerError(VolliError):
    """A remote peer sent bad data; drop it, the local state is unchanged."""


class MalformedFrame(PeerError):
    """A data-channel frame does not parse as a volli frame."""


class MalformedEnvelope(PeerError):
    """An encrypted envelope does not parse strictly (JSON, fields, base64, sizes)."""


class OversizedInput(PeerError):
    """Input is larger than the configured cap; it was refused before parsing."""


class UnknownPeer(PeerError):
    """Input came from a peer id or key that is not a pinned contact."""


class ReplayError(PeerError):
    """This message id was already accepted; the copy is a retransmission or a replay."""


class StaleMessage(PeerError):
    """The signed timestamp is too old or too far in the future."""


class ConversationRefused(PeerError):
    """A received message names a conversation it may not create or post to: a ``dm-`` id
    of two other peers, a look-alike (non-ASCII) id, or members beyond sender and receiver."""


class MalformedBody(MalformedEnvelope):
    """A decrypted body is not a text body (``0x01`` + UTF-8, or deflated), or a stored
    version-1 body is not exactly ``{"type": "text", "text": str}`` (or nests deeper)."""


class DuplicateMessageId(PeerError):
    """This message id was already used by another sender; refused and not acknowledged."""


class UnboundMessageId(PeerError):
    """The message id does not carry its sender's tag (:mod:`volli_nb.core.message_id`):
    an id taken from someone else, or minted by a peer that does not bind its ids."""


# --- cryptography refused ----------------------------------------------------


class CryptoError(VolliError):
    """A signature, tag, key or commitment did not verify."""


class BadSignature(CryptoError, PeerError):
    """An Ed25519 signature does not verify for the claimed key."""


class KeyMismatch(CryptoError, PeerError):
    """A key differs from the one pinned for that contact (possible impersonation)."""


class StaleDeviceRecord(KeyMismatch):
    """A validly signed device record that is not newer than the pinned one (a rollback)."""


class NotARecipient(CryptoError, PeerError):
    """The envelope holds no key wrapped for this identity."""


class DecryptionFailed(CryptoError, PeerError):
    """An AEAD tag did not verify: the data was altered or the key is wrong."""


class KeyCommitmentMismatch(CryptoError, PeerError):
    """The unwrapped content key does not match the signed commitment."""


class LowOrderKey(CryptoError, PeerError):
    """An X25519 public key of low order was offered; it yields no shared secret."""


class ChannelBindingFailed(CryptoError, PeerError):
    """The peer's signature over both DTLS fingerprints did not verify."""


# --- the local side ----------------------------------------------------------


class UsageError(VolliError, ValueError):
    """The caller used the API wrongly; the message says how to call it instead."""


class BadPairingCode(UsageError):
    """A pasted pairing code is mangled, truncated or of the wrong kind."""


class NotFound(UsageError, KeyError):
    """A queue row, contact or conversation id does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class WrongPassphrase(VolliError):
    """The passphrase does not unlock this profile's database key."""


class StorageError(VolliError):
    """The database file is damaged, tampered with, or from an unknown schema."""


class TamperedRow(StorageError):
    """A row's trust data (keys, ``verified``, members, sender, direction) does not match
    its MAC: the file was edited without the passphrase.  ``table`` and ``key`` name it."""

    def __init__(self, table: str, key: object, message: str) -> None:
        super().__init__(message)
        self.table, self.key = table, key


class TamperedSchema(StorageError):
    """The file's schema holds SQLite objects a profile never has (a trigger, a view) or
    altered ones: planted by someone who could write the file.  ``objects`` names each."""

    def __init__(self, objects: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.objects = objects


class StorageFull(StorageError):
    """The disk (or the filesystem holding the profile) has no room for this write."""


class StorageBusy(StorageError):
    """Another program holds the profile's write lock (a ``sqlite3`` shell in a
    transaction): the write gave up after a short wait instead of freezing the loop."""


class ProfileInUse(VolliError):
    """Another open (in this process or another one) owns this profile; ``holder`` says who."""

    def __init__(self, message: str, holder: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}


class TransportClosed(VolliError):
    """The data channel or peer connection is closed; the message stays queued."""


class RefusedDescription(PeerError):
    """A remote offer or answer asks for what we will not do: send ICE checks to an address
    no peer has (not an IP address; multicast, broadcast, unspecified; port 0) or to more
    candidates than a peer gathers, or send in messages too small for a channel."""


# --- sessions: handshake, Double Ratchet, envelope v2 ------------------------
# (appended for core/crypto/handshake.py, ratchet.py and envelope.py)


class MalformedHandshake(PeerError):
    """A session handshake hello does not parse strictly (layout, sizes, version)."""


class MalformedRatchetHeader(MalformedEnvelope):
    """A Double Ratchet header inside an envelope does not parse strictly."""


class TooManySkipped(PeerError):
    """A ratchet header asks to skip more message keys than the bound allows."""


class MessageKeyUnavailable(PeerError):
    """No key is held for this message: a duplicate, or its skipped key expired or was
    evicted.  Not a :class:`ReplayError`: only an id the receiver stored is a confirmed
    duplicate (acknowledged again); a missing key for an unseen id is refused."""


class SessionStateCorrupt(StorageError):
    """A sealed ratchet state does not open (wrong key, edited bytes) or does not decode."""


# --- TURN: what aiortc would swallow, named by the preflight ------------------
# (appended for net/turn_preflight.py; each message names the server and what to fix)


class TurnError(TransportClosed):
    """No relay allocation from a TURN server; nothing was sent, messages stay queued."""

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class TurnAuthFailed(TurnError):
    """The TURN server refused the username and credential (401)."""


class TurnCredentialsExpired(TurnAuthFailed):
    """Time-limited TURN credentials (coturn ``use-auth-secret``) are past their expiry."""


class TurnCertificateError(TurnError):
    """A ``turns:`` server's certificate is not trusted or does not name the host."""


class TurnRefused(TurnError):
    """The TURN server refused the connection or the request (or TLS did not start)."""


class TurnTimeout(TurnError):
    """No answer from the TURN server in time (often: that transport is blocked)."""


# --- groups: signed, chained membership records ------------------------------
# (appended for core/groups/; one class per defect, so a test and a log name it exactly)


class GroupError(PeerError):
    """A group's membership record, or a message bound to one, was refused."""


class MalformedGroupRecord(GroupError):
    """A membership record does not parse strictly (layout, sizes, order, UTF-8)."""


class ForgedGroupRecord(GroupError, CryptoError):
    """A membership record's signature does not verify for the key of the member it names."""


class SquattedGroupId(GroupError, CryptoError):
    """A group's first record names an id not derived from its creator's key and randomness."""


class NotGroupAdmin(GroupError):
    """A membership record signed by someone who was not an admin of the version before it
    (a member may only sign its own leaving)."""


class BrokenGroupChain(GroupError):
    """A membership record does not follow the one it names as previous (another group, a
    version that skips, or built on a change that lost a concurrent one)."""


class GroupRecordsMissing(BrokenGroupChain):
    """A membership record builds on one this member does not hold yet: fetch the chain
    from whoever sent it, then apply it again."""


class StaleGroupRecord(GroupError):
    """A membership record for a version that is settled: lower than the current one, or
    competing with one that was built upon."""


class ReplayedGroupRecord(StaleGroupRecord):
    """A membership record this member holds already: a replay (or a resend)."""


class RevokedGroupRecord(StaleGroupRecord):
    """A membership record competing with the version that removed or demoted its signer:
    a removed admin cannot take its group back with a record made on the version before."""


class UnknownGroup(GroupError):
    """A membership record for a group this member does not hold, and not its first record."""


class TooManyHeld(GroupError):
    """A contact has as many group messages held (waiting for records not held yet) as one
    may: its later ones are refused, and come again on its retries once those are released."""


class NotGroupMember(GroupError):
    """A group message from (or to) someone the record it was sent under does not list, or
    from a member the current record has removed."""
