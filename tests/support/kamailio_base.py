"""The parts every test Kamailio configuration shares: the global section and in-dialog routing.

:mod:`tests.support.kamailio_registrar` and :mod:`tests.support.kamailio_carrier` differ only in
what a new request gets; both start from :func:`preamble` (one UDP listener on ``host:port``,
logs to stderr, one worker, usrloc in memory) and open ``request_route`` with
:func:`dialog_routing` (Max-Forwards, requests with a To tag along their Route set, ACK and
CANCEL matched to their transaction). Run the text with :class:`sipbridge.kamailio.Kamailio`.

    cfg = preamble("127.0.0.1", port) + dialog_routing() + "    ...the new requests...\\n}\\n"
"""

from __future__ import annotations

import re

from sipbridge.kamailio import module_dir

MODULES = ("tm", "sl", "rr", "pv", "usrloc", "registrar", "auth", "maxfwd", "xlog", "textops",
           "siputils")


def check_password(password: str) -> None:
    """Refuse a password that cannot stand inside a Kamailio string literal."""
    if '"' in password or "\\" in password:
        raise ValueError("the password must not contain quotes or backslashes")


def preamble(host: str, port: int, *, min_expires: int = 1, max_expires: int | None = None,
             mpath: str | None = None) -> str:
    """Global parameters, the :data:`MODULES` loaded from ``mpath`` (this machine's module
    directory by default) and their parameters; ``max_expires`` None leaves Kamailio's own."""
    loads = "\n".join(f'loadmodule "{m}.so"' for m in MODULES)
    limit = ("" if max_expires is None
             else f'modparam("registrar", "max_expires", {int(max_expires)})\n')
    return f"""#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
listen=udp:{host}:{port}
alias=udp:{host}:{port}
mpath="{mpath or module_dir()}"

{loads}

modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", {int(min_expires)})
{limit}modparam("rr", "enable_full_lr", 1)

"""


def dialog_routing(on_route: str = "") -> str:
    """``request_route {`` and its first statements, up to where a new dialog's request goes on:
    too many hops is a 483; a request with a To tag follows its Route set (``on_route``, a
    statement such as an ``xlog``, runs before it is relayed), an ACK its transaction, any other
    gets 404; a CANCEL follows its INVITE. The caller closes the route."""
    before = f"            {on_route}\n" if on_route else ""
    return f"""request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
{before}            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
"""


def log_matches(pattern: re.Pattern, output: str) -> list[re.Match]:
    """Each line of Kamailio's ``output`` where ``pattern`` is found, as its match, oldest first."""
    return [m for m in map(pattern.search, output.splitlines()) if m]
