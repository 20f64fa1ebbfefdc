"""Recognise pjsip's reports of incoming SIP messages it dropped, and count them (pure).

pjsip parses every datagram before the application sees it and drops what it cannot use, saying
so only in its own log. pjsua2 exposes no drop callback, so the stack's log writer hands each
pjsip line to :meth:`DropCounter.feed`, which recognises the two reports (first line only; the
rest is the packet itself, which is never copied into our log):

* ``Dropping 435 bytes packet from UDP 1.2.3.4:5060 : PJSIP syntax error exception when parsing
  'CSeq' header on line 6 col 7`` (pjsip log level 2: a header it cannot parse, garbage bytes);
* ``Error processing packet from 1.2.3.4:5060: Missing required header(s) (PJSIP_EMISSINGHDR)
  Call-ID [code 171050]:`` (level 1: no Call-ID, From, To, Via or CSeq).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DROP = re.compile(
    r"^(?:Dropping|Error processing)(?: (?P<bytes>\d+) bytes)? packet from"
    r"(?: (?:UDP|TCP|TLS)\S*)? (?P<source>\S+?)\s*:\s+(?P<reason>.*)$")
# the log level at which pjsip reports syntax-error drops: the writer must receive it
DROP_LOG_LEVEL = 2


@dataclass(frozen=True)
class Drop:
    source: str
    reason: str
    size: int | None


def parse_drop(message: str) -> Drop | None:
    """The drop a pjsip log message reports, or None if it reports none."""
    first = message.lstrip().split("\n", 1)[0].rstrip(" :\r")
    m = _DROP.match(first)
    if m is None:
        return None
    reason = re.sub(r"\s*\[code \d+\]\s*$", "", m.group("reason")).strip()
    size = int(m.group("bytes")) if m.group("bytes") else None
    return Drop(m.group("source"), reason[:200], size)


class DropCounter:
    """Counts dropped messages; ``feed`` returns the drop a line reports (for the log)."""

    def __init__(self):
        self.count = 0

    def feed(self, message: str) -> Drop | None:
        drop = parse_drop(message)
        if drop is not None:
            self.count += 1
        return drop
