"""structlog set-up: JSON lines when stderr is not a terminal, readable lines when it is.

Every line of a call carries its ``call_id`` (the session binds it), so one ``grep`` follows a
call through SIP, media, turn-taking and the upstream model.
"""

from __future__ import annotations

import logging
import sys

import structlog

from .app.tap import TAP

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure(level: str = "info", fmt: str = "auto", stream=None,
              fields: dict | None = None) -> None:
    """Configure structlog once for the process. ``fmt`` is ``auto``, ``json`` or ``console``.

    ``fields`` are added to every line (a cell's worker logs ``worker=i``). Each line is one
    ``write`` call, so the processes of a cell sharing one stream do not interleave lines.
    """
    stream = stream or sys.stderr
    static = dict(fields or {})

    def add_fields(_logger, _name, event_dict):
        for key, value in static.items():
            event_dict.setdefault(key, value)
        return event_dict

    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer = (structlog.dev.ConsoleRenderer(colors=False) if fmt == "console"
                else structlog.processors.JSONRenderer())
    # records and events are folded from info lines (sipbridge/app/tap.py): the tap sees them
    # even when log.level hides them from the output
    shown = _LEVELS[level]

    def below_level(_logger, name, event_dict):
        if _LEVELS.get(name, logging.ERROR if name in ("exception", "critical") else logging.INFO) < shown:
            raise structlog.DropEvent
        return event_dict
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_fields,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            TAP,
            below_level,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(min(shown, logging.INFO)),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
