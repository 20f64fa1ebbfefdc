"""A Kamailio configuration text for a digest-authenticating registrar and proxy, for tests.

The registrar keeps its location table in memory only (``usrloc`` ``db_mode`` 0, no database)
and checks every REGISTER with ``pv_www_authenticate`` against one fixed password, whatever
the user. Requests that are not REGISTERs are record-routed and sent to the registered contact
of their request URI's user (``lookup("location")``), so a call to ``sip:USER@registrar`` reaches
whoever registered as USER; in-dialog requests follow their Route set (``loose_route``).

Each saved binding is logged as a line the tests can look for::

    registrar_saved user=alice expires=300 contact=<sip:alice@127.0.0.1:5071;ob>

    cfg = registrar_config("127.0.0.1", port, password="s3cret")
    with Kamailio(cfg, tmp_path / "kam", sip=("127.0.0.1", port)) as k:
        ...  # saved_bindings(k.output()) -> [{"user":..., "expires":..., "contact":...}, ...]
        options_to_user("127.0.0.1", port, "alice")  # "SIP/2.0 200 OK" once alice's UA answers

``bad_password`` picks what a wrong password gets: ``"challenge"`` (a fresh 401, the usual
401 loop a UA must give up on) or ``"forbidden"`` (403).
"""

from __future__ import annotations

import re
import secrets
import socket

from tests.support.kamailio_base import check_password, dialog_routing, log_matches, preamble

SAVED = re.compile(r"registrar_saved user=(?P<user>\S*) expires=(?P<expires>\S*) "
                   r"contact=(?P<contact>.*)$")
RELAYED = re.compile(r"registrar_relayed method=(?P<method>\S+) user=(?P<user>\S*) "
                     r"to=(?P<to>\S*)")


def registrar_config(host: str, port: int, password: str, *, min_expires: int = 1,
                     max_expires: int = 3600, bad_password: str = "challenge",
                     mpath: str | None = None) -> str:
    """Kamailio 5.x configuration: registrar with a fixed digest password, proxy to contacts."""
    if bad_password not in ("challenge", "forbidden"):
        raise ValueError(f"bad_password must be challenge or forbidden, got {bad_password!r}")
    check_password(password)
    on_bad = ('sl_send_reply("403", "Forbidden");' if bad_password == "forbidden"
              else 'www_challenge("$td", "0");')
    relay_log = 'xlog("L_NOTICE", "registrar_relayed method=$rm user=$rU to=$du\\n");'
    head = (preamble(host, port, min_expires=min_expires, max_expires=max_expires, mpath=mpath)
            + dialog_routing(relay_log))
    return head + f"""    if (is_method("OPTIONS") && uri == myself && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (is_method("REGISTER")) {{
        $var(auth) = pv_www_authenticate("$td", "{password}", "0");
        if ($var(auth) == -2) {{
            xlog("L_NOTICE", "registrar_bad_password user=$au\\n");
            {on_bad}
            exit;
        }}
        if ($var(auth) < 0) {{
            www_challenge("$td", "0");
            exit;
        }}
        if (!save("location")) {{
            sl_reply_error();
            exit;
        }}
        xlog("L_NOTICE", "registrar_saved user=$tU expires=$hdr(Expires) contact=$ct\\n");
        exit;
    }}
    record_route();
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    xlog("L_NOTICE", "registrar_relayed method=$rm user=$rU to=$ru\\n");
    t_relay();
}}
"""


def saved_bindings(output: str) -> list[dict]:
    """The ``registrar_saved`` lines in Kamailio's output, oldest first."""
    return [m.groupdict() for m in log_matches(SAVED, output)]


def relayed(output: str) -> list[dict]:
    """The ``registrar_relayed`` lines (requests sent on to a contact or along a route)."""
    return [m.groupdict() for m in log_matches(RELAYED, output)]


def options_to_user(host: str, port: int, user: str, timeout: float = 2.0) -> str | None:
    """Send ``OPTIONS sip:USER@host:port`` to the registrar; return the final status line.

    The registrar relays it to USER's registered contact (``lookup``), so a 200 means the
    request reached the registered UA; an unknown user gets the registrar's 404. None: no
    final answer within ``timeout``.
    """
    tag = secrets.token_hex(6)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        lport = s.getsockname()[1]
        msg = (f"OPTIONS sip:{user}@{host}:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{tag};rport\r\n"
               f"From: <sip:tester@127.0.0.1:{lport}>;tag={tag}\r\n"
               f"To: <sip:{user}@{host}:{port}>\r\nCall-ID: options-{tag}\r\n"
               f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        s.sendto(msg.encode(), (host, port))
        s.settimeout(timeout)
        while True:
            try:
                data = s.recv(65535)
            except (socket.timeout, ConnectionRefusedError):
                return None
            line = data.split(b"\r\n", 1)[0].decode(errors="replace")
            if not line.startswith("SIP/2.0 1"):  # skip provisional answers
                return line
