"""A Kamailio configuration text for a test "carrier": registrar plus an authenticating proxy.

What a SIP trunk provider does to a customer's calls, on 127.0.0.1:

* REGISTER: digest-checked (``pv_www_authenticate``, 401) against one fixed password and saved
  in memory, as in :mod:`tests.support.kamailio_registrar`;
* a new INVITE: digest-checked as a proxy (``pv_proxy_authenticate``: 407 Proxy Authentication
  Required without or with wrong credentials), then record-routed and relayed to the test UAS
  that ``numbers`` maps the Request-URI user to (``{"100": 5071}``); unknown numbers get 404;
* in-dialog requests (ACK, BYE) follow the Route set; CANCEL follows its INVITE.

Log lines the tests look for (see :func:`carrier_lines`)::

    carrier_challenged method=INVITE user=100 reason=none     (no or bad credentials: 407 sent)
    carrier_authorized method=INVITE user=100 auth=acme from=<sip:+4930@127.0.0.1:5099>
    carrier_register user=acme src=127.0.0.1:5060       (every REGISTER: see register_lines)
"""

from __future__ import annotations

import re

from tests.support.kamailio_base import check_password, dialog_routing, log_matches, preamble

LINE = re.compile(r"(?P<event>carrier_(?:challenged|authorized)) (?P<fields>.*)$")
REGISTER_LINE = re.compile(r"carrier_register (?P<fields>.*)$")
REALM = "carrier.test"


def carrier_config(host: str, port: int, password: str, numbers: dict[str, int]) -> str:
    """Kamailio 5.x configuration text (see the module docstring)."""
    check_password(password)
    routes = "\n".join(
        f'    if ($rU == "{user}") {{ $du = "sip:127.0.0.1:{int(uas)}"; route(RELAY); exit; }}'
        for user, uas in numbers.items())
    return preamble(host, port) + dialog_routing() + f"""    if (is_method("REGISTER")) {{
        xlog("L_NOTICE", "carrier_register user=$tU src=$si:$sp\\n");
        if (pv_www_authenticate("{REALM}", "{password}", "0") < 0) {{
            www_challenge("{REALM}", "0");
            exit;
        }}
        save("location");
        exit;
    }}
    if (!is_method("INVITE")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    $var(auth) = pv_proxy_authenticate("{REALM}", "{password}", "0");
    if ($var(auth) < 0) {{
        xlog("L_NOTICE", "carrier_challenged method=$rm user=$rU reason=$var(auth)\\n");
        proxy_challenge("{REALM}", "0");
        exit;
    }}
    xlog("L_NOTICE", "carrier_authorized method=$rm user=$rU auth=$au from=$fu\\n");
    consume_credentials();
{routes}
    sl_send_reply("404", "Not Found");
}}

route[RELAY] {{
    record_route();
    t_relay();
}}
"""


def carrier_lines(output: str) -> list[dict]:
    """The ``carrier_*`` lines of Kamailio's output, oldest first: {"event", "method", ...}."""
    return [{"event": m.group("event"), **_fields(m)} for m in log_matches(LINE, output)]


def register_lines(output: str) -> list[dict]:
    """Every REGISTER the carrier received, oldest first: {"user", "src": "host:port"}."""
    return [_fields(m) for m in log_matches(REGISTER_LINE, output)]


def _fields(m: re.Match) -> dict:
    return dict(kv.split("=", 1) for kv in m.group("fields").split() if "=" in kv)
