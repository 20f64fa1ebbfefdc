"""Who may call: source-address filtering for INVITEs (``sip.allow_from``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ..errors import ConfigError


def parse_networks(cidrs: Iterable[str], key: str = "sip.allow_from") -> tuple:
    """Parse CIDR strings (``10.0.0.0/8``, ``192.0.2.7``) into networks; a bad entry is a ConfigError."""
    nets = []
    for i, text in enumerate(cidrs):
        try:
            nets.append(ipaddress.ip_network(str(text).strip(), strict=False))
        except ValueError as exc:
            raise ConfigError(f"{key}[{i}]", f"not an IP network: {text!r} ({exc})") from None
    return tuple(nets)


def split_host_port(address: str) -> tuple[str, int | None]:
    """Split pjsip's ``"1.2.3.4:5060"`` / ``"[::1]:5060"`` source address; port None if absent."""
    address = address.strip()
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if address.count(":") == 1:
        host, _, port = address.partition(":")
        return host, int(port) if port.isdigit() else None
    return address, None


class AddressFilter:
    """Allow a source address when it lies in one of the configured networks.

    An empty list allows nobody: exposing a SIP port with no filter must be a deliberate
    ``0.0.0.0/0``, never an accident.
    """

    def __init__(self, cidrs: Iterable[str]):
        self.networks = parse_networks(cidrs)

    def allows(self, address: str) -> bool:
        """True when ``address`` (an IP, optionally ``ip:port``) is inside an allowed network."""
        host, _ = split_host_port(address)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in self.networks)
