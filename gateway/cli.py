"""The ``gateway`` command line (also ``python -m gateway``).

Subcommands: ``run`` (the daemon), ``check-config`` (exit 0, or 2 with one line per
problem), ``smsc-sim`` (the SMPP SMSC simulator as its own process), ``--version``.
"""

from __future__ import annotations

import argparse
import gc
import sys

from gateway import __version__

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gateway", description="Self-hosted carrier gateway")
    p.add_argument("--version", action="version", version=f"gateway {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("-c", "--config", required=True, help="TOML config file")
    run.add_argument("--log-format", choices=("text", "json"), default=None,
                     help="log line format (default: [logging] format, else text)")
    run.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, …")

    chk = sub.add_parser("check-config", help="validate a config file")
    chk.add_argument("-c", "--config", required=True, help="TOML config file")

    sim = sub.add_parser("smsc-sim", help="run the SMPP SMSC simulator")
    from gateway.testing import smsc

    smsc.add_arguments(sim)
    return p


def _check(path: str) -> int:
    from gateway import settings

    problems = settings.check(path)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return EXIT_CONFIG
    print(f"{path}: ok")
    return 0


def _run(args) -> int:
    import trio

    from gateway import settings
    from gateway.observability import logging as glog

    try:
        cfg = settings.load(args.config)
    except settings.ConfigError as e:
        for line in e.problems:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    log_cfg = getattr(cfg, "logging", None)
    glog.setup(
        args.log_level or getattr(log_cfg, "level", "INFO"),
        args.log_format or getattr(log_cfg, "format", "text"),
    )
    from gateway.runtime.app import Gateway

    # Fewer, larger young-generation collections: the pipeline allocates a few dozen
    # short-lived objects per message, and the default threshold (700) runs the cyclic
    # collector every ~100 µs under load. Startup objects are frozen out of it (app.py).
    gc.set_threshold(50_000, 20, 10)

    async def main() -> None:
        await Gateway(cfg).run()

    trio.run(main)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return _check(args.config)
    if args.command == "run":
        return _run(args)
    if args.command == "smsc-sim":
        import trio

        trio.run(_sim, args)
        return 0
    return 1


async def _sim(args) -> None:
    """The simulator until SIGTERM or SIGINT, then a clean exit 0 (no traceback)."""
    import signal

    import trio

    from gateway.testing import smsc

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as sigs:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(smsc.run_from_args, args)
            async for _ in sigs:
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    sys.exit(main())
