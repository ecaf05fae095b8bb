"""TURN preflight: a real allocation before gathering, so every silent failure gets a name.

aiortc (1.16) swallows every TURN failure: wrong or expired credentials, an untrusted
certificate, a refused connection all yield no relay candidate and no log line, and
gathering gives up after 5 s.  It also uses only the first TURN URL it is given.  So
before gathering we ask each configured TURN URL for an allocation (aioice's own TURN
client, so the check takes the path gathering will take), concurrently and bounded by
``NetworkConfig.preflight_timeout``; the fastest that works is the one aiortc gets, and
each failure becomes a typed :class:`~volli_nb.base.errors.TurnError` whose message says
what to fix.  The allocation is deleted at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aioice import stun
from aioice.turn import create_turn_endpoint

from volli_nb.base.clock import Clock, monotonic_clock, system_clock
from volli_nb.base.errors import (
    TurnAuthFailed,
    TurnCertificateError,
    TurnCredentialsExpired,
    TurnError,
    TurnRefused,
    TurnTimeout,
)
from volli_nb.core.eventlog import EventLog
from volli_nb.core.netconfig import IceServer, IceUrl, NetworkConfig, turn_urls
from volli_nb.core.sdp import CandidateInfo
from volli_nb.net.tls import trust_context

ALLOCATION_LIFETIME = 60  # seconds; the preflight deletes it anyway
DELETE_TIMEOUT = 1.0
_REST_USERNAME = re.compile(r"^(\d{9,12}):")  # coturn use-auth-secret: "<expiry>:<name>"
_CODES = {
    403: "the server forbids it (a quota, or a user not allowed to allocate)",
    437: "allocation mismatch (a stale allocation from this address; retry)",
    486: "the user's allocation quota is reached (close other sessions)",
    508: "the server has no capacity left (try another TURN server)",
}


@dataclass(frozen=True)
class TurnCheck:
    """One TURN URL's answer: a relay address, or the error that says why not."""

    url: str
    seconds: float | None  # until the allocation answered or failed; None if cut short
    relay: str | None = None  # "host:port" of the relayed address
    error: TurnError | None = None
    note: str = ""  # for checks cut short: why

    @property
    def ok(self) -> bool:
        return self.relay is not None

    def describe(self) -> str:
        if self.ok:
            return f"{self.url}: relay {self.relay} in {1000 * (self.seconds or 0):.0f} ms"
        if self.error is not None:
            return f"{self.url}: {type(self.error).__name__}: {self.error}"
        return f"{self.url}: {self.note}"


@dataclass(frozen=True)
class PreflightReport:
    """Every TURN URL's check, and the one aiortc is handed (None: none worked)."""

    checks: tuple[TurnCheck, ...]
    chosen: IceServer | None
    at: float  # monotonic time of the check

    @property
    def chosen_check(self) -> TurnCheck | None:
        url = self.chosen.url_list()[0] if self.chosen is not None else None
        return next((c for c in self.checks if c.url == url), None)

    def summary(self) -> str:
        chosen = self.chosen_check
        head = (
            f"using {chosen.url} (relay {chosen.relay}, the fastest that works)"
            if chosen is not None
            else "no TURN server gave a relay allocation"
        )
        rest = [c.describe() for c in self.checks if c is not chosen]
        return head + ("; " + "; ".join(rest) if rest else "")

    def failure(self) -> TurnError:
        """The error to raise when nothing worked: the one failure's own type, or (when
        they differ) a TurnError listing each."""
        errors = [c.error for c in self.checks if c.error is not None]
        if len(errors) == 1:
            return errors[0]
        kinds = {type(e) for e in errors}
        cls = kinds.pop() if len(kinds) == 1 else TurnError
        return cls("no TURN server works: " + "; ".join(c.describe() for c in self.checks))


class _Sink(asyncio.DatagramProtocol):
    """Receives nothing; tells when aioice has deleted the allocation."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def allocate(server: IceServer, url: IceUrl) -> str:
    """Allocate a relay on ``url`` with ``server``'s credentials and delete it; returns the
    relayed address.  Raises whatever aioice raises (see :func:`classify`)."""
    context = trust_context(server.ca, str(url)) if url.tls else None
    transport, sink = await create_turn_endpoint(
        _Sink,
        (url.host, url.port),
        server.username,
        server.credential,
        lifetime=ALLOCATION_LIFETIME,
        ssl=context,
        transport=url.transport or "udp",
    )
    host, port = transport.get_extra_info("sockname")
    transport.close()
    with contextlib.suppress(TimeoutError):  # else the server frees it when its lifetime ends
        await asyncio.wait_for(asyncio.shield(sink.closed), DELETE_TIMEOUT)
    return f"{host}:{port}"


def timeout_error(url: IceUrl, seconds: float | None) -> TurnTimeout:
    if url.transport == "udp":
        hint = (
            "UDP is probably blocked on this network (Binder and many firewalls let only TCP "
            f"443 out): use turns:{url.host}:443?transport=tcp or turn:{url.host}:443?transport=tcp"
        )
    else:
        hint = "a firewall drops it, the address is wrong, or the server is down"
    within = f"within {seconds:g} s" if seconds is not None else "(the request timed out)"
    return TurnTimeout(f"no answer from {url} {within}: {hint}", str(url))


def _rejected(server: IceServer, url: IceUrl, code: int, reason: str, now: float) -> TurnError:
    if code != 401:
        why = _CODES.get(code, "see the TURN server's log")
        return TurnRefused(f"{url} refused the allocation ({code} {reason}): {why}", str(url))
    if server.username is None or server.credential is None:
        return TurnAuthFailed(f"{url} requires a username and credential", str(url))
    expiry = _REST_USERNAME.match(server.username)
    if expiry is not None and int(expiry.group(1)) < now:
        return TurnCredentialsExpired(
            f"{url} refused time-limited credentials that expired "
            f"{now - int(expiry.group(1)):.0f} s ago (user {server.username!r}): ask for fresh "
            "ones (volli-signal renews them while you stay joined), and check this clock",
            str(url),
        )
    hint = (
        "coturn's static-auth-secret must equal volli-signal's --turn-secret, and both clocks "
        "must be right"
        if expiry is not None
        else "check the username and credential"
    )
    return TurnAuthFailed(
        f"{url} refused the credentials (401 {reason}) for user {server.username!r}: {hint}",
        str(url),
    )


def classify(exc: BaseException, server: IceServer, url: IceUrl, now: float) -> TurnError:
    """The typed error for what aioice raised while allocating on ``url``."""
    where, name = f"{url.host}:{url.port}", str(url)
    if isinstance(exc, stun.TransactionFailed):
        code, reason = exc.response.attributes.get("ERROR-CODE", (0, "no error code"))
        return _rejected(server, url, int(code), str(reason), now)
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or str(exc)
        fix = (
            f"use the host name the certificate was issued for, not {url.host!r}"
            if "mismatch" in why.lower()
            else "pass the CA that signed it: IceServer(url, user, credential, ca='ca.pem'), "
            "NetworkConfig.relay_via(..., ca=...) or store.join(..., ssl='ca.pem')"
        )
        return TurnCertificateError(
            f"the certificate of {name} is not trusted ({why}): {fix}", name
        )
    if isinstance(exc, ssl.SSLError):
        return TurnRefused(
            f"TLS with {where} failed ({exc.reason or exc}): is that port serving TLS? "
            f"For plain TCP use turn:{where}?transport=tcp",
            name,
        )
    if isinstance(exc, ConnectionRefusedError):
        return TurnRefused(
            f"{where} refused the {url.transport} connection: is coturn listening there "
            "(listening-port / tls-listening-port)?",
            name,
        )
    if isinstance(exc, socket.gaierror):
        return TurnRefused(f"cannot resolve {url.host!r} ({exc.strerror}): check the name", name)
    if isinstance(exc, stun.TransactionTimeout | TimeoutError):
        return timeout_error(url, None)
    return TurnRefused(f"{name} failed: {type(exc).__name__}: {exc}", name)


async def check(server: IceServer, url: IceUrl, *, now: Clock, monotonic: Clock) -> TurnCheck:
    start = monotonic()
    try:
        relay = await allocate(server, url)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        error = classify(exc, server, url, now())
        return TurnCheck(str(url), monotonic() - start, error=error)
    return TurnCheck(str(url), monotonic() - start, relay=relay)


async def preflight(
    servers: Sequence[IceServer],
    *,
    timeout: float = 5.0,
    now: Clock = system_clock,
    monotonic: Clock = monotonic_clock,
) -> PreflightReport:
    """Try every TURN URL in ``servers`` at once; the first to allocate is chosen."""
    candidates = turn_urls(servers)
    loop = asyncio.get_running_loop()
    tasks = {
        loop.create_task(check(s, u, now=now, monotonic=monotonic)): (s, u) for s, u in candidates
    }
    done: dict[asyncio.Task[TurnCheck], TurnCheck] = {}
    pending = set(tasks)
    deadline = loop.time() + timeout
    winner: asyncio.Task[TurnCheck] | None = None
    try:
        while pending and winner is None and (left := deadline - loop.time()) > 0:
            finished, pending = await asyncio.wait(
                pending, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            done.update((t, t.result()) for t in finished)
            working = [t for t in finished if done[t].ok]
            winner = min(working, key=lambda t: done[t].seconds or 0.0) if working else None
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    first = str(tasks[winner][1]) if winner is not None else ""
    checks = []
    for task, (_server, url) in tasks.items():
        if task in done:
            checks.append(done[task])
        elif winner is not None:
            checks.append(TurnCheck(str(url), None, note=f"not needed: {first} answered first"))
        else:
            checks.append(TurnCheck(str(url), None, error=timeout_error(url, timeout)))
    chosen = tasks[winner][0].only(first) if winner is not None else None
    return PreflightReport(tuple(checks), chosen, monotonic())


def _trust_key(ca: object) -> object:
    """Equal CA paths are the same trust; a context is itself."""
    return str(ca) if isinstance(ca, str | Path) else id(ca)


class TurnPlanner:
    """What a NetworkStore asks before each connection: which TURN URL aiortc gets.

    A working answer is kept ``config.preflight_ttl`` seconds for the same servers and
    credentials (renewed credentials from ``volli-signal`` are new ones, so they are checked
    again); a failure is checked again on the next connection, so a fixed server is seen at
    once; :meth:`forget` drops the answer, e.g. when gathering found no relay after all.
    Connections made at the same moment share one preflight."""

    def __init__(
        self, config: NetworkConfig, log: EventLog, *, clock: Clock, monotonic: Clock
    ) -> None:
        self.config, self.log = config, log
        self._clock, self._monotonic = clock, monotonic
        self.report: PreflightReport | None = None
        self._key: tuple[object, ...] | None = None
        self._lock = asyncio.Lock()

    def _servers_key(self) -> tuple[object, ...]:
        return tuple(
            (tuple(s.url_list()), s.username, s.credential, _trust_key(s.ca))
            for s in self.config.ice_servers
        )

    def _fresh(self) -> PreflightReport | None:
        report = self.report
        if (
            report is None
            or report.chosen is None
            or self._key != self._servers_key()
            or self._monotonic() - report.at > self.config.preflight_ttl
        ):
            return None
        return report

    def forget(self) -> None:
        self.report, self._key = None, None

    def gathered(self, candidates: Sequence[CandidateInfo]) -> None:
        """What a connection gathered: no relay after a preflight that chose a TURN
        server means the server stopped working since; check again next time."""
        if self.report and self.report.chosen and all(c.type != "relay" for c in candidates):
            self.log.add("error", "the TURN server passed the preflight but gave no relay now")
            self.forget()

    async def check(self) -> PreflightReport | None:
        """Run the preflight now (None when no TURN server is configured)."""
        if not turn_urls(self.config.ice_servers):
            self.forget()
            return None
        return await self._run()

    async def _run(self) -> PreflightReport:
        config = self.config
        report = await preflight(
            config.ice_servers,
            timeout=config.preflight_timeout,
            now=self._clock,
            monotonic=self._monotonic,
        )
        self.report, self._key = report, self._servers_key()
        self.log.add("ice", f"TURN preflight: {report.summary()}")
        return report

    async def servers(self) -> list[IceServer] | None:
        """The ICE servers to hand aiortc (None: the configuration as it is), after a
        preflight if needed.  Relay-only with no working TURN server raises its error."""
        config = self.config
        if not config.preflight or not turn_urls(config.ice_servers):
            return None
        async with self._lock:  # a second connection waits for the first one's answer
            report = self._fresh() or await self._run()
        stun = [t for s in config.ice_servers if (t := s.only_stun()) is not None]
        if report.chosen is not None:
            return [*stun, report.chosen]
        if config.relay_only:
            raise report.failure()
        self.log.add("ice", "no TURN relay: pairing only where host or STUN candidates reach")
        return stun

    def tls_contexts(self, servers: Sequence[IceServer]) -> dict[tuple[str, int], ssl.SSLContext]:
        """The certificate trust for each turns: server aiortc will use."""
        return {
            (u.host, u.port): trust_context(s.ca, str(u)) for s, u in turn_urls(servers) if u.tls
        }
