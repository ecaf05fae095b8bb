"""Link quality: round trip, loss and goodput estimates, and the timeouts they imply.

The seed plans "network quality detection, dynamic backoff".  While a peer is
connected, how long to wait for an ACK should follow the link: a LAN answers in
milliseconds, a 200 ms / 5 % loss path with SCTP's 1 s minimum retransmission
timeout needs seconds, and a backlog of queued bytes needs the time to drain it.
A fixed timeout is wrong for one of them: too short, and a slow but healthy link
sees false timeouts and duplicate sends; too long, and a message lost to a broken
peer waits for nothing.  The persistent 1/5/15/60 s schedule stays for peers that
are offline; this only decides when a *connected* peer's silence counts as failure.

Pure: samples and clocks come from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LOSS_GAIN = 1 / 16  # EWMA weight of one loss sample
GOODPUT_GAIN = 1 / 4
STALL = 1.0  # a silence longer than two heartbeats is a stall (a retransmission, likely)
NOISE_LOSS = 0.05  # loss estimates below this do not stretch the silence limit
WINDOW = 0.5  # seconds of ACKs per goodput sample
ASSUMED_GOODPUT = 64 * 1024  # bytes/s before the first ACK measured it: err on waiting


@dataclass
class LinkQuality:
    """RFC 6298 SRTT/RTTVAR plus an EWMA loss rate and goodput, from the caller's samples.

    ``loss`` counts what the sender can see: a retransmission (unreliable transport)
    or, over a reliable channel, a round trip far above the smoothed one, which is
    what a retransmission inside SCTP looks like from above.
    """

    srtt: float | None = None
    rttvar: float | None = None
    loss: float = 0.0
    goodput: float | None = None  # bytes per second acknowledged
    samples: int = 0
    _window_start: float | None = field(default=None, repr=False)
    _window_bytes: int = field(default=0, repr=False)

    def rtt_sample(self, rtt: float) -> None:
        """One round trip (K = 4, alpha = 1/8, beta = 1/4); a spike also counts as loss."""
        if rtt < 0:
            return
        if self.srtt is None or self.rttvar is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            late = rtt > self.srtt + 4 * self.rttvar + 0.2
            self.loss_sample(late)
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.samples += 1

    def stalled(self, gap: float) -> None:
        """Nothing arrived for ``gap`` seconds while the peer should have been talking."""
        if gap > STALL:
            self.loss_sample(True)

    def loss_sample(self, lost: bool) -> None:
        self.loss += LOSS_GAIN * ((1.0 if lost else 0.0) - self.loss)

    def acked(self, nbytes: int, now: float) -> None:
        """``nbytes`` were acknowledged at ``now``; goodput is measured over windows of at
        least ``WINDOW`` seconds, so a burst of ACKs does not read as infinite speed."""
        if self._window_start is None:
            self._window_start, self._window_bytes = now, 0
            return  # the window opens at the first ACK; its bytes were sent before it
        self._window_bytes += nbytes
        elapsed = now - self._window_start
        if elapsed < WINDOW:
            return
        rate = self._window_bytes / elapsed
        self.goodput = (
            rate if self.goodput is None else self.goodput + GOODPUT_GAIN * (rate - self.goodput)
        )
        self._window_start, self._window_bytes = now, 0

    def idle(self) -> None:
        """Nothing is in flight: the next ACK opens a fresh window (idle time is not slowness)."""
        self._window_start = None

    def silence_limit(self, base: float) -> float:
        """How long the peer may stay silent before we call it dead.

        ``base`` on a clean link (a vanished peer is noticed fast); on a lossy one,
        stalls of a few retransmission timeouts are normal (the channel is ordered, so
        one lost packet holds back everything behind it), and the limit grows, up to
        four times ``base``.  A stray stall (a busy CPU) barely moves it."""
        excess = max(0.0, self.loss - NOISE_LOSS)
        return min(base * (1 + 20 * excess), 4 * base)

    def send_buffer(self, low: int, high: int) -> int:
        """How many bytes to let the transport buffer: about one second of goodput.

        A deep buffer on a slow link delays everything queued behind it, pongs and
        ACKs included; on a fast link it keeps the transport busy."""
        if self.goodput is None:
            return max(low, high // 4)
        return int(min(max(self.goodput, low), high))

    def rto(self, floor: float = 0.2, ceiling: float = 10.0) -> float:
        if self.srtt is None or self.rttvar is None:
            return min(max(1.0, floor), ceiling)
        return min(max(self.srtt + 4 * self.rttvar, floor), ceiling)

    def ack_timeout(
        self, queued_bytes: int = 0, *, floor: float = 3.0, ceiling: float = 60.0
    ) -> float:
        """How long a connected peer may take to acknowledge a message sent now.

        Four retransmission timeouts, stretched by the loss rate (each loss costs
        about one more), plus the time to drain what is queued ahead at the
        measured goodput (a cautious guess before the first ACK); clamped to ``[floor, ceiling]``.
        """
        loss = min(self.loss, 0.9)
        wait = 4 * self.rto(ceiling=ceiling) / (1 - loss)
        if queued_bytes:
            wait += queued_bytes / (self.goodput or ASSUMED_GOODPUT)
        return min(max(wait, floor), ceiling)


__all__ = ["LinkQuality"]
