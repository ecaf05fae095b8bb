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

from dataclasses import dataclass

LOSS_GAIN = 1 / 16  # EWMA weight of one loss sample
GOODPUT_GAIN = 1 / 4
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

    def loss_sample(self, lost: bool) -> None:
        self.loss += LOSS_GAIN * ((1.0 if lost else 0.0) - self.loss)

    def delivered(self, nbytes: int, seconds: float) -> None:
        """``nbytes`` were acknowledged ``seconds`` after they were sent."""
        if nbytes <= 0 or seconds <= 0:
            return
        rate = nbytes / seconds
        self.goodput = (
            rate if self.goodput is None else (self.goodput + GOODPUT_GAIN * (rate - self.goodput))
        )

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
