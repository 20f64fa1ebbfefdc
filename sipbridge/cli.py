"""``sipbridge run`` and ``sipbridge check-config``.

Exit codes: 0 clean stop, 2 configuration error (the message names the key), 1 anything else.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .errors import ConfigError, SipBridgeError

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sipbridge", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"sipbridge {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="answer calls and bridge them to the realtime model")
    run.add_argument("--config", "-c", help="YAML config file (default: built-in defaults)")
    check = sub.add_parser("check-config", help="validate a config file and print the result")
    check.add_argument("config", help="YAML config file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from . import config as config_mod
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as exc:
        print(f"sipbridge: config error: {exc.key}: {exc.reason}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        url, key = cfg.upstream()
        print(f"ok: sip {cfg.sip.host}:{cfg.sip.port}, upstream {url}"
              f"{' (api key set)' if key else ''}, turn_detection {cfg.turn_detection.type}")
        return 0
    from . import logs
    logs.configure(cfg.log.level, cfg.log.format)
    from .worker import Worker
    try:
        return Worker(cfg).run()
    except SipBridgeError as exc:
        print(f"sipbridge: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
