"""What a ratchet state may hold and what one received frame may cost.

The spec leaves both open (its MAX_SKIP only); these are ours:

- :class:`Limits`: at most ``max_skip`` message keys skipped in one chain per message
  (more is :class:`TooManySkipped`), at most ``max_skipped`` held in all (the oldest
  evicted first), each kept ``skipped_ttl_ms`` after it was derived.  Expiry
  (:func:`expire_skipped`) runs on every decrypt and on the owner's timer; a key stamped
  in the future (the clock went back) is re-stamped, so it cannot outlive its time.
- :class:`WorkBudget`: one frame may carry hundreds of envelopes, each asking for up to
  ``max_skip`` derivations and a DH step (a signed bundle of 512 such envelopes took 5 s
  to open, synchronously).  The frame's decrypts share one budget, counted in keys
  derived and DH steps and checked *before* any work, so a hostile frame is refused
  within its cap; a genuine one needs one key per envelope, its skips, and a DH step per
  new ratchet key of the sender (a handful).
- :class:`SkipAllowance`: the frame's cap alone let a contact skip ~1,023 keys in every
  single-envelope frame (4.65 ms of key derivation each, against 0.07 ms for a frame
  that skips none), frame after frame.  So one peer may also skip at most
  ``SKIP_BURST`` keys at once and ``SKIPS_PER_MINUTE`` a minute after that (~10 ms of
  work a minute); past it an envelope is :class:`TooManySkipped` before deriving (refused,
  not stored nor acknowledged: its sender seals it again later).  Genuine skips are rare:
  an envelope sealed and never sent, a message lost with its channel; a session can hold
  only ``max_skipped`` (2,048) of them anyway.  The allowance is the peer's, kept across
  its sessions (``app/peer_sessions.py``): a hello re-keys at will, and a refused skip
  makes us re-key, so a session's own would come fresh with each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from volli_nb.base.errors import TooManySkipped, UsageError
from volli_nb.core.crypto.kdf import kdf_ck

SkippedKeys = Mapping[tuple[bytes, int], tuple[bytes, int]]  # (dh, n) -> (mk, stored_ms)
Found = list[tuple[tuple[bytes, int], bytes]]  # keys a decrypt derived: ((dh, n), mk)

MAX_DH_STEPS_PER_FRAME = 32
SKIP_BURST = 2048  # skipped keys one session may derive at once (= max_skipped)
SKIPS_PER_MINUTE = 2048  # … and, once that is spent, a minute


@dataclass(frozen=True, slots=True)
class Limits:
    """How many skipped message keys a state holds, and for how long."""

    max_skip: int = 1024
    max_skipped: int = 2048
    skipped_ttl_ms: int = 60 * 60 * 1000

    def __post_init__(self) -> None:
        if not 0 <= self.max_skip <= self.max_skipped or self.skipped_ttl_ms <= 0:
            raise UsageError("need 0 <= max_skip <= max_skipped and a positive skipped_ttl_ms")


DEFAULT_LIMITS = Limits()


class SkipAllowance:
    """What one peer's frames may still skip, over time (a bucket of keys)."""

    __slots__ = ("at_ms", "burst", "per_minute", "tokens")

    def __init__(self, per_minute: int = SKIPS_PER_MINUTE, burst: int = SKIP_BURST) -> None:
        self.per_minute, self.burst, self.tokens = per_minute, burst, float(burst)
        self.at_ms: int | None = None

    def refill(self, now_ms: int) -> None:
        """Add what the time since the last refill earned (nothing if the clock went back)."""
        if self.at_ms is not None and now_ms > self.at_ms:
            earned = (now_ms - self.at_ms) * self.per_minute / 60_000
            self.tokens = min(float(self.burst), self.tokens + earned)
        self.at_ms = now_ms if self.at_ms is None else max(self.at_ms, now_ms)


class WorkBudget:
    """What the decrypts of one received frame may still cost."""

    __slots__ = ("allowance", "dh_steps", "keys")

    def __init__(self, keys: int, dh_steps: int, allowance: SkipAllowance | None = None) -> None:
        self.keys, self.dh_steps, self.allowance = keys, dh_steps, allowance

    @classmethod
    def for_frame(
        cls,
        envelopes: int,
        limits: Limits = DEFAULT_LIMITS,
        allowance: SkipAllowance | None = None,
    ) -> WorkBudget:
        return cls(envelopes + limits.max_skip, MAX_DH_STEPS_PER_FRAME, allowance)

    def spend_skips(self, count: int) -> None:
        """Keys skipped: from the frame's cap and from the session's allowance."""
        allowance = self.allowance
        if allowance is not None and count > allowance.tokens:
            raise TooManySkipped(
                f"this message skips {count} message keys; the session may skip "
                f"{int(allowance.tokens)} more now ({allowance.per_minute} a minute): "
                "refused before deriving"
            )
        self.spend_keys(count)
        if allowance is not None:
            allowance.tokens -= count

    def spend_keys(self, count: int) -> None:
        if count > self.keys:
            raise TooManySkipped(
                f"this frame would derive {count} more message keys, past its cap "
                f"({self.keys} left); refused before deriving"
            )
        self.keys -= count

    def spend_dh_step(self) -> None:
        if self.dh_steps <= 0:
            raise TooManySkipped("this frame asks for more DH ratchet steps than a frame may take")
        self.dh_steps -= 1


def expire_skipped(skipped: SkippedKeys, now_ms: int, ttl_ms: int) -> SkippedKeys:
    """The keys younger than the TTL (the same mapping if none expired).  A key stamped
    in the future (the clock went back) is re-stamped ``now_ms``, so it expires one TTL
    from now, not one TTL after a time that may never come."""
    if not skipped:
        return skipped
    stamps = [stored_ms for _mk, stored_ms in skipped.values()]
    if now_ms - stamps[0] < ttl_ms and max(stamps) <= now_ms:
        return skipped  # nothing expired, nothing stamped in the future (the usual case)
    kept: dict[tuple[bytes, int], tuple[bytes, int]] = {}
    changed = False
    for key, (mk, stored_ms) in skipped.items():
        if stored_ms > now_ms:
            stored_ms, changed = now_ms, True
        if now_ms - stored_ms >= ttl_ms:
            changed = True
            continue
        kept[key] = (mk, stored_ms)
    return MappingProxyType(kept) if changed else skipped


def skip_keys(
    dh: bytes | None,
    chain_key: bytes | None,
    nr: int,
    until: int,
    limits: Limits,
    found: Found,
    budget: WorkBudget | None,
) -> tuple[bytes | None, int]:
    """SkipMessageKeys: derive the keys ``nr .. until-1`` of one receiving chain."""
    if until - nr > limits.max_skip:
        raise TooManySkipped(
            f"the header skips {until - nr} message keys in one chain; the bound is "
            f"{limits.max_skip}"
        )
    if chain_key is None or dh is None:
        return chain_key, nr
    if budget is not None and until > nr:
        budget.spend_skips(until - nr)
    while nr < until:
        chain_key, message_key = kdf_ck(chain_key)
        found.append(((dh, nr), message_key))
        nr += 1
    return chain_key, nr


def merge_skipped(skipped: SkippedKeys, found: Found, now_ms: int, limits: Limits) -> SkippedKeys:
    """``skipped`` with ``found`` added (stamped ``now_ms``), the oldest evicted past the cap."""
    if not found:
        return skipped
    merged = dict(skipped)
    merged.update((key, (mk, now_ms)) for key, mk in found)
    excess = len(merged) - limits.max_skipped
    if excess > 0:
        merged = dict(list(merged.items())[excess:])
    return MappingProxyType(merged)


__all__ = [
    "DEFAULT_LIMITS",
    "MAX_DH_STEPS_PER_FRAME",
    "SKIPS_PER_MINUTE",
    "SKIP_BURST",
    "Found",
    "Limits",
    "SkipAllowance",
    "SkippedKeys",
    "WorkBudget",
    "expire_skipped",
    "merge_skipped",
    "skip_keys",
]
