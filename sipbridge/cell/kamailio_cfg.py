"""Kamailio in front of a cell's workers: the configuration text, generated. Pure.

What the generated Kamailio does (Kamailio 5.x, modules from Debian's ``kamailio`` package):

* listens on the cell's one SIP address (``sip.host:sip.port``, ``advertise`` = ``sip.public_host``)
  and answers ``OPTIONS`` sent to it with 200 (trunk keep-alives);
* drops INVITEs from sources outside ``sip.allow_from`` with 403 (the workers only accept the
  front);
* answers 503 with ``Retry-After`` (``pike`` module) to a source that sends more INVITEs than the
  whole cell admits (:data:`~sipbridge.sip.gate.ADMIT_LIMIT` a second per worker, counted over
  :data:`PIKE_UNIT_S` seconds), until it slows down: a flood from one address is shed here
  instead of being spread over the workers, whose 503s would mark every one of them inactive;
* sends each new INVITE to a worker with the ``dispatcher`` module, round-robin (algorithm 4)
  over the workers that answer its ``OPTIONS`` probes (every ``cell.probe_interval_s``; a worker
  that stops answering is set inactive, and active again at its next 200);
* fails over to the next worker (``failure_route`` + ``ds_next_dst``) on 486 (full: 4 calls),
  503 (draining, or its model unreachable), 408, or no answer within ``cell.failover_timeout_ms``
  (tm ``fr_timer``); a silent or 503 worker is also marked inactive until a probe succeeds;
* ``record_route``s, so in-dialog requests (ACK, BYE, re-INVITE) follow the dialog through it.

The cell's ``trunks:`` are registered by the front, once per trunk, with the front's own
address as the contact (``uac`` module ``uac_reg``; its records live in a ``db_text`` directory,
``db/``, that :func:`render` also writes, passwords included: keep it private). Workers of a cell
never register themselves: one registration per worker would give the trunk N contacts that
bypass the front.

:func:`render` returns every file by name; ``conf_dir`` is where Kamailio will find them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sip.acl import parse_networks
from ..sip.gate import ADMIT_LIMIT, ADMIT_WINDOW_S
from .plan import plan, reachable_host

DISPATCHER_SET = 1
ROUND_ROBIN = 4
FAILOVER_CODES = "486|503|408"
PIKE_UNIT_S = 2              # pike's sampling_time_unit
PIKE_RETRY_AFTER_S = 5


def pike_density(workers: int) -> int:
    """INVITEs one source may send per pike unit: what the cell's workers admit together."""
    return max(1, round(ADMIT_LIMIT * PIKE_UNIT_S / ADMIT_WINDOW_S) * workers)


@dataclass(frozen=True)
class Registration:
    """One ``uac_reg`` record: register ``user@domain`` at the trunk, contact = the front."""
    name: str                   # record id (l_uuid): the user part of the front's contact
    user: str
    domain: str                 # the registrar's domain (and request URI host)
    password: str
    auth_user: str | None = None
    proxy: str | None = None    # e.g. "sip:10.0.0.1:5060"; default: the domain
    realm: str = ""             # empty: take the realm from the challenge
    expires: int = 300

    @classmethod
    def from_trunk(cls, trunk) -> "Registration":
        """The record for one :class:`~sipbridge.trunk_config.TrunkConfig`."""
        return cls(name=trunk.name, user=trunk.username, domain=trunk.registrar_hostport,
                   password=trunk.password, proxy=trunk.outbound_proxy or trunk.registrar,
                   realm="" if trunk.realm == "*" else trunk.realm, expires=trunk.expires)


@dataclass(frozen=True)
class FrontSpec:
    """Everything the generated configuration depends on."""
    listen: tuple[str, int]
    workers: tuple[tuple[str, int], ...]
    allow_from: tuple[str, ...] = ("127.0.0.1/32",)
    advertise: str | None = None
    probe_interval_s: int = 5
    failover_timeout_ms: int = 2000
    children: int = 1   # one UDP receiver: a 180 cannot overtake the 200 behind it
    conf_dir: str = "/etc/kamailio/sipbridge"
    mpath: str | None = None
    registrations: tuple[Registration, ...] = ()


def front_spec(cfg, conf_dir: str, mpath: str | None = None,
               registrations: tuple[Registration, ...] | None = None) -> FrontSpec:
    """The :class:`FrontSpec` of a sipbridge :class:`~sipbridge.config.Config`'s cell."""
    return FrontSpec(
        listen=(cfg.sip.host, cfg.sip.port),
        workers=tuple(w.target for w in plan(cfg)),
        allow_from=tuple(cfg.sip.allow_from),
        advertise=cfg.sip.public_host,
        probe_interval_s=cfg.cell.probe_interval_s,
        failover_timeout_ms=cfg.cell.failover_timeout_ms,
        conf_dir=conf_dir,
        mpath=mpath,
        registrations=tuple(Registration.from_trunk(t) for t in getattr(cfg, "trunks", ()))
        if registrations is None else tuple(registrations),
    )


def dispatcher_list(spec: FrontSpec) -> str:
    """The dispatcher list file: ``setid destination flags priority attrs``, one worker a line."""
    lines = ["# sipbridge workers: set, destination, flags (0 = active), priority, attributes"]
    for i, (host, port) in enumerate(spec.workers):
        lines.append(f"{DISPATCHER_SET} sip:{host}:{port} 0 0 worker={i}")
    return "\n".join(lines) + "\n"


def _acl_check(networks: tuple[str, ...]) -> str:
    if not networks:
        return "1 == 1"  # allow_from: [] allows nobody
    nets = parse_networks(networks)
    return " && ".join(f'!is_in_subnet("$si", "{n}")' for n in nets)


def _registration_block(spec: FrontSpec) -> str:
    if not spec.registrations:
        return ""
    host, port = spec.listen
    contact = f"sip:{spec.advertise or host}:{port}"
    return f"""
# ---- trunk registration: once per trunk for the whole cell, contact = this front ----
loadmodule "db_text.so"
loadmodule "uac.so"
modparam("uac", "reg_db_url", "text://{spec.conf_dir}/db")
modparam("uac", "reg_contact_addr", "{contact[4:]}")
modparam("uac", "reg_timer_interval", 30)
modparam("uac", "reg_retry_interval", 30)
"""


def kamailio_cfg(spec: FrontSpec) -> str:
    """The ``kamailio.cfg`` text for ``spec``."""
    host, port = spec.listen
    advertise = f" advertise {spec.advertise}:{port}" if spec.advertise else ""
    mpath = f'mpath="{spec.mpath}"\n' if spec.mpath else ""
    workers = ", ".join(f"{h}:{p}" for h, p in spec.workers)
    return f"""#!KAMAILIO
# Generated by sipbridge (sipbridge kamailio-config): the SIP front of a cell of
# {len(spec.workers)} worker(s) ({workers}). Regenerate rather than edit.
# Needs {spec.conf_dir}/dispatcher.list (written next to this file).

debug=1
log_stderror=no
memdbg=5
memlog=5
children={spec.children}
auto_aliases=no
server_header="Server: sipbridge-front"
user_agent_header="User-Agent: sipbridge-front"
listen=udp:{host}:{port}{advertise}
{mpath}
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "ipops.so"
loadmodule "dispatcher.so"
loadmodule "pike.so"

# a worker that does not answer an INVITE within this time is skipped
modparam("tm", "fr_timer", {spec.failover_timeout_ms})
modparam("tm", "fr_inv_timer", 120000)
modparam("rr", "enable_full_lr", 1)

modparam("dispatcher", "list_file", "{spec.conf_dir}/dispatcher.list")
modparam("dispatcher", "flags", 2)                   # keep the failover list for ds_next_dst
modparam("dispatcher", "ds_ping_method", "OPTIONS")
modparam("dispatcher", "ds_ping_from", "sip:front@{host}:{port}")
modparam("dispatcher", "ds_ping_interval", {spec.probe_interval_s})
modparam("dispatcher", "ds_probing_mode", 1)         # probe every worker, always
modparam("dispatcher", "ds_probing_threshold", 1)    # one lost probe: inactive
modparam("dispatcher", "ds_inactive_threshold", 1)   # one answered probe: active again
modparam("dispatcher", "ds_ping_reply_codes", "class=2")

# INVITE flood shedding per source address (see sipbridge/sip/gate.py for the workers' budget)
modparam("pike", "sampling_time_unit", {PIKE_UNIT_S})
modparam("pike", "reqs_density_per_unit", {pike_density(len(spec.workers))})
modparam("pike", "remove_latency", 4)
{_registration_block(spec)}
request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        route(IN_DIALOG);
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("OPTIONS") && uri == myself) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (!is_method("INVITE")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    if ({_acl_check(spec.allow_from)}) {{
        xlog("L_NOTICE", "sipbridge-front: INVITE from $si refused (sip.allow_from)\\n");
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    if (!pike_check_req()) {{
        append_to_reply("Retry-After: {PIKE_RETRY_AFTER_S}\\r\\n");
        sl_send_reply("503", "Service Unavailable");
        exit;
    }}
    t_check_trans();
    record_route();
    if (!ds_select_dst("{DISPATCHER_SET}", "{ROUND_ROBIN}")) {{
        xlog("L_WARN", "sipbridge-front: no worker available for $ci\\n");
        sl_send_reply("503", "No Worker Available");
        exit;
    }}
    route(TO_WORKER);
}}

route[TO_WORKER] {{
    t_on_failure("NEXT_WORKER");
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}

route[IN_DIALOG] {{
    if (loose_route()) {{
        if (!t_relay()) {{
            sl_reply_error();
        }}
        exit;
    }}
    if (is_method("ACK")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    sl_send_reply("404", "Not Here");
    exit;
}}

failure_route[NEXT_WORKER] {{
    if (t_is_canceled()) {{
        exit;
    }}
    if (t_check_status("{FAILOVER_CODES}") || (t_branch_timeout() && !t_branch_replied())) {{
        if (!t_check_status("486")) {{
            ds_mark_dst("ip");                           # inactive until a probe answers
        }}
        xlog("L_NOTICE", "sipbridge-front: $du failed ($T_reply_code) for $ci, next worker\\n");
        if (ds_next_dst()) {{
            route(TO_WORKER);
        }}
    }}
}}
"""


def uacreg_table(spec: FrontSpec) -> str:
    """The ``db_text`` ``uacreg`` table: one record per trunk."""
    host, _port = spec.listen
    cols = ("id(int,auto) l_uuid(string) l_username(string) l_domain(string) r_username(string) "
            "r_domain(string) realm(string,null) auth_username(string) auth_password(string) "
            "auth_ha1(string,null) auth_proxy(string) expires(int) flags(int) reg_delay(int) "
            "contact_addr(string,null) socket(string,null)")

    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace(":", "\\:")

    rows = [[str(i + 1), r.name, r.user, spec.advertise or host, r.user, r.domain, r.realm,
             r.auth_user or r.user, r.password, "", r.proxy or f"sip:{r.domain}", str(r.expires),
             "0", "0", "", ""] for i, r in enumerate(spec.registrations)]
    return cols + "\n" + "".join(":".join(esc(v) for v in row) + "\n" for row in rows)


UACREG_VERSION = 5


def render(spec: FrontSpec) -> dict[str, str]:
    """Every file the front needs, by name relative to ``spec.conf_dir``."""
    files = {"kamailio.cfg": kamailio_cfg(spec), "dispatcher.list": dispatcher_list(spec)}
    if spec.registrations:
        files["db/version"] = ("table_name(string) table_version(int)\n"
                               f"uacreg:{UACREG_VERSION}\n")
        files["db/uacreg"] = uacreg_table(spec)
    return files


def worker_targets(cfg) -> list[tuple[str, int]]:
    """(host, port) of each worker, as the front sends to them."""
    return [w.target for w in plan(cfg)]


__all__ = ["FrontSpec", "Registration", "front_spec", "render", "kamailio_cfg", "dispatcher_list",
           "reachable_host", "worker_targets"]
