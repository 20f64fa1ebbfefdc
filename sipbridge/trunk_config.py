"""The ``trunks:`` section: SIP trunks the bridge registers with (validated at start-up).

Each entry becomes a frozen :class:`TrunkConfig`. The password is never written in the file:
``password_env`` names an environment variable, ``password_file`` a file holding it (its
trailing newline is dropped); exactly one of them, resolved here so a missing variable or file
stops the start with a :class:`ConfigError` naming e.g. ``trunks[0].password_env``. The
resolved password is kept out of ``repr()`` (and so out of logs and ``check-config``).

    trunks:
      - name: carrier
        registrar: sip:sip.carrier.example
        username: "4930123456"
        password_env: CARRIER_PASSWORD
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SIP_URI = re.compile(r"^sip:(?:[^@;?\s]+@)?[A-Za-z0-9.\-\[\]:]+(?:;[^\s]*)?$", re.IGNORECASE)

EXPIRES_RANGE = (10, 86400)      # pjsua refreshes no sooner than 5 s after a registration
RETRY_RANGE = (0.1, 3600.0)


@dataclass(frozen=True)
class TrunkConfig:
    name: str
    registrar: str
    username: str
    password_env: str | None = None
    password_file: str | None = None
    expires: int = 300
    outbound_proxy: str | None = None
    retry_min_s: float = 1.0
    retry_max_s: float = 60.0
    realm: str = "*"
    password: str = field(default="", repr=False, compare=False)  # resolved, never printed
    # not a YAML key: False in a cell's workers (``cli.worker_config``), whose front registers
    # the trunk; the worker keeps the account only to place INVITEs and answer their challenges
    register: bool = True

    @property
    def registrar_hostport(self) -> str:
        """``host[:port]`` of the registrar URI: the domain of the account's address of record."""
        rest = self.registrar[4:].split(";", 1)[0].split("?", 1)[0]
        return rest.rsplit("@", 1)[-1]

    @property
    def aor(self) -> str:
        """The address of record registered: ``sip:username@registrar-host[:port]``."""
        return f"sip:{self.username}@{self.registrar_hostport}"


_KEYS = tuple(f.name for f in fields(TrunkConfig) if f.name not in ("password", "register"))
_REQUIRED = ("name", "registrar", "username")


def _string(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise ConfigError(key, f"must be a non-empty string, got {value!r}")
    return str(value)


def _sip_uri(key: str, value: Any) -> str:
    text = _string(key, value)
    if text.lower().startswith("sips:"):
        raise ConfigError(key, f"only sip: URIs (UDP) are supported, got {text!r}")
    if not _SIP_URI.match(text):
        raise ConfigError(key, f"must be a sip: URI such as sip:registrar.example:5060, "
                               f"got {text!r}")
    return text


def _number(key: str, value: Any, lo: float, hi: float, integer: bool = False) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise ConfigError(key, f"must be {kind}, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(key, f"must be between {lo:g} and {hi:g}, got {value}")
    return value


def _password(key: str, entry: Mapping, environ: Mapping[str, str]) -> str:
    env_name, file_name = entry.get("password_env"), entry.get("password_file")
    if env_name is not None and file_name is not None:
        raise ConfigError(key, "set exactly one of password_env and password_file, not both")
    if env_name is not None:
        name = _string(f"{key}.password_env", env_name)
        value = environ.get(name)
        if not value:
            raise ConfigError(f"{key}.password_env", f"environment variable {name} is not set")
        return value
    if file_name is not None:
        path = Path(_string(f"{key}.password_file", file_name))
        try:
            value = path.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{key}.password_file",
                              f"cannot read {path}: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"{key}.password_file", f"{path} is empty")
        return value
    raise ConfigError(f"{key}.password_env", "required: set password_env or password_file")


def _trunk(key: str, entry: Any, environ: Mapping[str, str]) -> TrunkConfig:
    if not isinstance(entry, Mapping):
        raise ConfigError(key, f"must be a mapping, got {type(entry).__name__}")
    for k in entry:
        if k not in _KEYS:
            raise ConfigError(f"{key}.{k}", f"unknown key (known: {', '.join(_KEYS)})")
    for k in _REQUIRED:
        if entry.get(k) is None:
            raise ConfigError(f"{key}.{k}", "required")
    name = _string(f"{key}.name", entry["name"])
    if not _NAME.match(name):
        raise ConfigError(f"{key}.name", "must be letters, digits, '_', '.' or '-' "
                                         f"(at most 64), got {name!r}")
    values: dict[str, Any] = {
        "name": name,
        "registrar": _sip_uri(f"{key}.registrar", entry["registrar"]),
        "username": _string(f"{key}.username", entry["username"]),
        "password": _password(key, entry, environ),
    }
    for k in ("password_env", "password_file", "realm"):
        if entry.get(k) is not None:
            values[k] = _string(f"{key}.{k}", entry[k])
    if entry.get("outbound_proxy") is not None:
        values["outbound_proxy"] = _sip_uri(f"{key}.outbound_proxy", entry["outbound_proxy"])
    if "expires" in entry:
        values["expires"] = _number(f"{key}.expires", entry["expires"], *EXPIRES_RANGE, True)
    for k in ("retry_min_s", "retry_max_s"):
        if k in entry:
            values[k] = float(_number(f"{key}.{k}", entry[k], *RETRY_RANGE))
    trunk = TrunkConfig(**values)
    if trunk.retry_min_s > trunk.retry_max_s:
        raise ConfigError(f"{key}.retry_min_s",
                          f"must not exceed retry_max_s ({trunk.retry_max_s:g}), "
                          f"got {trunk.retry_min_s:g}")
    return trunk


def parse_trunks(raw: Any, environ: Mapping[str, str]) -> tuple[TrunkConfig, ...]:
    """Validate the ``trunks`` list (None: no trunks) and resolve each password."""
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise ConfigError("trunks", f"must be a list of trunk mappings, got {type(raw).__name__}")
    out: list[TrunkConfig] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        trunk = _trunk(f"trunks[{i}]", entry, environ)
        if trunk.name in seen:
            raise ConfigError(f"trunks[{i}].name", f"duplicate trunk name {trunk.name!r}")
        seen.add(trunk.name)
        out.append(trunk)
    return tuple(out)
