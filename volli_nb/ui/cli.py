"""``volli-nb``: the command line (demo, bench, netsim, signal-load, chaos, netns)."""

from __future__ import annotations

import argparse
import importlib
import sys

from volli_nb.base.console import plain

OWN_PARSER = {  # commands whose module parses its own options
    "netsim": "volli_nb.lab.netsim",
    "signal-load": "volli_nb.lab.signal_load",
    "chaos": "volli_nb.lab.chaos_loop",
}


def _bench_options(bench: argparse.ArgumentParser) -> None:
    """``volli-nb bench``'s options."""
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench.add_argument("--messages", type=int, default=2000)
    bench.add_argument("--bulk-mb", type=float, default=8.0)
    bench.add_argument(
        "--flush", type=int, default=10_000, help="messages queued offline, then flushed"
    )
    bench.add_argument("--quick", action="store_true", help="skip aiortc's ~30 s dead-peer wait")
    bench.add_argument(
        "--latency", type=float, default=200.0, help="round trip (ms) of the impaired rows"
    )
    bench.add_argument(
        "--packet-loss", type=float, default=5.0, help="loss (%%) each way of the impaired rows"
    )
    bench.add_argument("--runs", type=int, help="runs per row (3; 1 with --quick)")
    bench.add_argument("--core", action="store_true", help="the pure core only (no network)")
    bench.add_argument(
        "--groups", action="store_true", help="group sends to 3, 10, 50 member processes"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in OWN_PARSER:  # options go straight through
        tool = importlib.import_module(OWN_PARSER[argv[0]])
        return int(tool.main(argv[1:]))
    parser = argparse.ArgumentParser(prog="volli-nb", description=plain(__doc__))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="two peers in two processes pair and exchange messages")
    _bench_options(sub.add_parser("bench", help="volli_nb against plain aiortc, side by side"))
    sub.add_parser(
        "signal-load", help="many clients against volli-signal processes", add_help=False
    )
    sub.add_parser(
        "netsim", help="two peers in their own namespaces, impaired between", add_help=False
    )
    sub.add_parser(
        "chaos", help="faults on signaling and peers in a loop: what comes back", add_help=False
    )
    netns = sub.add_parser("netns", help="run a command inside a throwaway network namespace")
    netns.add_argument(
        "--if-root", action="store_true", help="without root or iproute2, run the command directly"
    )
    netns.add_argument("cmd", nargs=argparse.REMAINDER)

    args = parser.parse_args(argv)
    if args.command == "demo":
        import asyncio

        from volli_nb.lab.demo import run_demo

        return asyncio.run(run_demo())
    if args.command == "bench" and args.groups:
        from volli_nb.lab.bench.groups import main as groups_main

        return groups_main(args)
    if args.command == "bench":
        from volli_nb.lab.bench.run import main as bench_main

        result: int = bench_main(args)
        return result
    if args.command == "netns":
        from volli_nb.lab import netns as ns

        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        return ns.main(cmd, if_root=args.if_root)
    return 2


if __name__ == "__main__":
    sys.exit(main())
