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


class WorkBudget:
    """What the decrypts of one received frame may still cost."""

    __slots__ = ("dh_steps", "keys")

    def __init__(self, keys: int, dh_steps: int) -> None:
        self.keys, self.dh_steps = keys, dh_steps

    @classmethod
    def for_frame(cls, envelopes: int, limits: Limits = DEFAULT_LIMITS) -> WorkBudget:
        return cls(keys=envelopes + limits.max_skip, dh_steps=MAX_DH_STEPS_PER_FRAME)

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
        budget.spend_keys(until - nr)
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
    "Found",
    "Limits",
    "SkippedKeys",
    "WorkBudget",
    "expire_skipped",
    "merge_skipped",
    "skip_keys",
]
