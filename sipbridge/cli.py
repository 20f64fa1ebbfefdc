"""``sipbridge run``, ``check-config``, ``kamailio-config`` and ``call`` (see sipbridge/caller).

Exit codes: 0 clean stop, 2 configuration error (the message names the key), 1 anything else.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .errors import ConfigError, SipBridgeError

EXIT_CONFIG = 2


def worker_config(cfg):
    """What one worker of a cell runs with: the cell's configuration, but its trunks dial only
    (``register`` off: the cell's front registers each trunk once, a worker never sends
    REGISTER; it keeps the trunk's account to place INVITEs through it and answer 401/407), and
    no ``api.listen`` (the supervisor serves the cell's API, the worker its channel). Pure."""
    import dataclasses
    return dataclasses.replace(
        cfg, trunks=tuple(dataclasses.replace(t, register=False) for t in cfg.trunks),
        api=dataclasses.replace(cfg.api, listen=None))


def _freeze_imports() -> None:
    """Hand everything imported so far (modules, classes, functions of numpy, aiohttp,
    onnxruntime, pjsua2 and ours: ~60k objects that live as long as the process) to
    ``gc.freeze``, out of the cyclic collector's walk. A full collection then visits only what
    the process made since: the worker's two at shutdown (they free the calls' pjsua proxies
    before libDestroy) and the interpreter's exit take ~0.16 s less (SIGTERM to exit of an
    idle worker 0.23 -> 0.07 s), and a generation-2 collection that falls on the media clock
    thread mid-call is that much shorter. Objects made later are collected as before; these
    live to the end (a full collection at this point frees nothing)."""
    import gc
    gc.freeze()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sipbridge", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"sipbridge {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="answer calls and bridge them to the realtime model")
    run.add_argument("--config", "-c", help="YAML config file (default: built-in defaults)")
    run.add_argument("--workers", type=int, help="worker processes (overrides cell.workers, "
                                                  "default auto: sized to the machine)")
    run.add_argument("--front", help="none | kamailio | auto (overrides cell.front)")
    run.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    kam = sub.add_parser("kamailio-config",
                         help="print the Kamailio configuration for a cell of workers")
    kam.add_argument("--config", "-c", help="YAML config file (default: built-in defaults)")
    kam.add_argument("--workers", type=int, help="worker processes (overrides cell.workers)")
    kam.add_argument("--conf-dir", default="/etc/kamailio/sipbridge",
                     help="directory Kamailio reads dispatcher.list from")
    kam.add_argument("--out", help="write every file (kamailio.cfg, dispatcher.list) here "
                                   "instead of printing kamailio.cfg")
    check = sub.add_parser("check-config", help="validate a config file and print the result")
    check.add_argument("config", help="YAML config file")
    from .caller.cli import add_arguments as call_arguments
    call_arguments(sub.add_parser("call", help="place a test call: speak a WAV, record and time "
                                               "the agent's answer"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "call":  # a client: no bridge configuration involved
        from .caller.cli import run as call
        return call(args)
    from . import config as config_mod
    overrides = {}
    if getattr(args, "workers", None) is not None:
        overrides["SIPBRIDGE_CELL__WORKERS"] = str(args.workers)
    if getattr(args, "front", None) is not None:
        overrides["SIPBRIDGE_CELL__FRONT"] = args.front
    if args.command == "kamailio-config":
        overrides["SIPBRIDGE_CELL__FRONT"] = "kamailio"  # the workers sit behind it
    try:
        cfg = config_mod.load(args.config, environ={**os.environ, **overrides})
    except ConfigError as exc:
        print(f"sipbridge: config error: {exc.key}: {exc.reason}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        url, key = cfg.upstream()
        print(f"ok: sip {cfg.sip.host}:{cfg.sip.port}, upstream {url}"
              f"{' (api key set)' if key else ''}, turn_detection {cfg.turn_detection.type}")
        from .cell.plan import LIBRARY_CALLS, is_cell, plan
        per = min(cfg.sip.max_calls or LIBRARY_CALLS, LIBRARY_CALLS)
        if is_cell(cfg):   # the size cell.workers/front (auto: this machine's) came to
            ws = plan(cfg)
            print(f"cell: {len(ws)} workers ({len(ws) * per} calls) on SIP {ws[0].sip_port}-"
                  f"{ws[-1].sip_port}, {ws[0].rtp_port_range} RTP ports each, front "
                  f"{cfg.cell.front}")
        else:
            print(f"cell: one process ({per} calls) on SIP {cfg.sip.port}, no front")
        for t in cfg.trunks:  # never the password: only where it comes from
            source = f"${t.password_env}" if t.password_env else t.password_file
            print(f"trunk {t.name}: {t.aor} via {t.registrar}, expires {t.expires} s, "
                  f"password from {source} (set)")
        for r in cfg.routes:  # matched in this order
            what = f"reject {r.reject}" if r.reject is not None else \
                "agent: " + (", ".join([*r.agent.realtime, *(["turn_detection"] if r.agent.turn
                                                              else []),
                                        *(["metadata"] if r.agent.metadata else [])]) or "defaults")
            print(f"route {r.name}: number {r.number or '*'}, trunk {r.trunk or '*'}, {what}")
        if cfg.app.webhook_url:
            print(f"webhook {cfg.app.webhook_url}: timeout {cfg.app.webhook_timeout_ms} ms, "
                  f"on failure {cfg.app.on_webhook_failure}, secret from "
                  f"${cfg.app.webhook_secret_env} (set)")
        return 0
    if args.command == "kamailio-config":
        from .cell.cli import kamailio_config
        return kamailio_config(cfg, args.conf_dir, args.out)
    from . import logs
    from .cell.plan import is_cell
    fields = None
    if args.worker_index is not None:  # one worker of a cell: the cell's front registers trunks
        fields = {"worker": args.worker_index}
        cfg = worker_config(cfg)
    logs.configure(cfg.log.level, cfg.log.format, fields=fields)
    try:
        if cfg.sip.media_port == "native":   # the C port's library, before anything starts
            from .media.native.build import BuildError, require
            try:
                require()
            except BuildError as exc:
                raise ConfigError("sip.media_port", f"native port unavailable: {exc}") from None
        if is_cell(cfg):
            from .cell.supervisor import Supervisor
            _freeze_imports()
            return Supervisor(cfg, args.config).run()
        from .worker import Worker
        _freeze_imports()
        return Worker(cfg, worker_index=args.worker_index).run()
    except ConfigError as exc:
        print(f"sipbridge: config error: {exc.key}: {exc.reason}", file=sys.stderr)
        return EXIT_CONFIG
    except SipBridgeError as exc:
        print(f"sipbridge: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
