"""The appliance's configuration: TOML in, one frozen, validated `Config` out.

Parse (tomllib), then validate, collecting every problem with its key path and line number
(config_reader.LineIndex) into one `ConfigError`, so an operator fixes a file in one pass. Defaults live
in the dataclasses below and nowhere else. Relative paths are resolved against the file's folder.
Secrets (the API token) may come from the file, a file of their own or an environment variable; this
module and cli.py are the only places that read os.environ.

Sections: [appliance], [api], [[speaker]] with [[speaker.peers]], [rpki] with [[rpki.cache]] and
[[rpki.file]], [reports], [engine] with [engine.default], [[engine.router]], [[engine.mode]],
[[engine.interface_algorithm]] and [[engine.neighbor]], [flowspec], [[enforcer]], [[bmp]] with
[bmp.routers], [timers], [steering], [collaboration] (`prefixes`).
configs/example.toml documents each key; `EngineConfig.policy()` gives the engine's Policy.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.collab.config import CollabConfig, read_collab
from appliance.config_reader import (
    ConfigError,
    ConfigProblem,
    LineIndex,
    Problems,
    Table,
    format_path,
    read_each,
)
from appliance.config_reader import Path as KeyPath
from appliance.engine.policy import Algorithm, Policy
from appliance.engine.steering import SteeringPolicy
from appliance.model import (
    Action,
    Capability,
    Inspector,
    Mode,
    Neighbor,
    RedirectForm,
    Relationship,
    Role,
    Severity,
    SteeringFallback,
    canonical_prefix,
)
from appliance.monitor.syslog import FACILITIES, SyslogTarget
from appliance.names import interface_name_problem, router_name_problem

__all__ = [
    "AlgorithmOverride",
    "ApiConfig",
    "ApplianceConfig",
    "BmpConfig",
    "CollaborationConfig",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "EnforcerConfig",
    "EngineConfig",
    "Family",
    "FlowspecConfig",
    "ModeOverride",
    "PeerConfig",
    "ReportsConfig",
    "RouterOverride",
    "RpkiConfig",
    "RpkiFileConfig",
    "RtrCacheConfig",
    "SpeakerConfig",
    "SpeakerType",
    "SyslogConfig",
    "TenantConfig",
    "TimersConfig",
    "load_config",
    "parse_config",
]

MAX_ASN = 2**32 - 1
LOG_LEVELS = ("debug", "info", "warning", "error")


class SpeakerType(enum.StrEnum):
    EXABGP = "exabgp"
    GOBGP = "gobgp"


class Family(enum.StrEnum):
    """Address families a peer session carries."""

    IPV4_UNICAST = "ipv4-unicast"
    IPV6_UNICAST = "ipv6-unicast"
    BGP_LS = "bgp-ls"
    IPV4_FLOWSPEC = "ipv4-flowspec"
    IPV6_FLOWSPEC = "ipv6-flowspec"


class RpkiFileFormat(enum.StrEnum):
    AUTO = "auto"
    RPKI_CLIENT = "rpki-client"
    ROUTINATOR = "routinator"
    CSV = "csv"


# --- the typed configuration ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApplianceConfig:
    asn: int
    router_id: str
    data_dir: Path
    log_level: str = "info"


DEFAULT_BODY_LIMIT_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class TenantConfig:
    """A tenant of the API ([[api.tenant]]): its own token sees and changes only its scope (api/scope.py).

    `interfaces` are (router, interface) pairs; `prefixes` are canonical. At least one router or
    interface: every answer savd gives is about a router's interface, so a scope without one sees nothing.
    """

    name: str
    token: str = field(repr=False)
    prefixes: tuple[str, ...] = ()
    routers: tuple[str, ...] = ()
    interfaces: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The HTTP API. Writes always need `token`; with no token configured, writes are refused."""

    host: str = "127.0.0.1"
    port: int = 8180
    token: str = field(default="", repr=False)
    read_token_required: bool = False
    #: request bodies above this are refused with 413 before they are read (a report is ~200 bytes)
    body_limit_bytes: int = DEFAULT_BODY_LIMIT_BYTES
    #: tokens scoped to a tenant; `token` stays the operator's, which sees everything
    tenants: tuple[TenantConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """A BGP neighbour of a speaker: a router that sends BGP-LS/paths and receives FlowSpec."""

    address: str
    asn: int
    router: str
    families: tuple[Family, ...] = (Family.BGP_LS, Family.IPV4_FLOWSPEC, Family.IPV6_FLOWSPEC)
    local_address: str = ""
    passive: bool = False


@dataclass(frozen=True, slots=True)
class SpeakerConfig:
    """One BGP speaker process: ExaBGP (started by savd) or a gobgpd reached over gRPC."""

    name: str
    type: SpeakerType
    asn: int
    router_id: str
    listen_host: str = ""
    listen_port: int = 179
    netns: str = ""
    api: str = ""
    peers: tuple[PeerConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class RtrCacheConfig:
    name: str
    host: str
    port: int
    preference: int = 1
    version: int = 1
    netns: str = ""


@dataclass(frozen=True, slots=True)
class RpkiFileConfig:
    path: Path
    format: RpkiFileFormat = RpkiFileFormat.AUTO
    reload_s: float = 60.0


@dataclass(frozen=True, slots=True)
class RpkiConfig:
    """RPKI sources; data older than `stale_after_s` raises an alarm, past `expire_after_s` it is dropped."""

    caches: tuple[RtrCacheConfig, ...] = ()
    files: tuple[RpkiFileConfig, ...] = ()
    stale_after_s: float = 3600.0
    expire_after_s: float = 7200.0


@dataclass(frozen=True, slots=True)
class ReportsConfig:
    file: Path | None = None


@dataclass(frozen=True, slots=True)
class BmpConfig:
    """A BMP station (RFC 7854) the routers connect to; their eBGP paths become the engine's BgpPaths.

    `routers` maps a BMP session's source address to a router name; without an entry the router is named
    by the sysName of its BMP Initiation (FRR: its hostname).
    """

    name: str
    host: str
    port: int = 11019
    netns: str = ""
    routers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class SyslogConfig:
    """RFC 5424 syslog output of the events beside the key=value log (monitor/syslog.py); off while
    `target` is empty."""

    target: str = ""
    facility: str = "daemon"
    app_name: str = "savd"
    hostname: str = ""
    min_severity: Severity = Severity.INFO


@dataclass(frozen=True, slots=True)
class TimersConfig:
    """Timing of the daemon's loops; SAVD_<KEY upper-cased> in the environment overrides each."""

    recompute_debounce_s: float = 0.2
    bgpls_hold_s: float = 90.0
    bgpls_initial_sync_s: float = 60.0
    speaker_holdover_s: float = 120.0
    reports_poll_s: float = 2.0
    bmp_flush_s: float = 0.3
    drift_check_s: float = 30.0   # routers' held FlowSpec against savd's intent (monitor/drift.py); 0: off


@dataclass(frozen=True, slots=True)
class ModeOverride:
    """The action for a router's interfaces (interface "" = every interface of that router)."""

    router: str
    interface: str
    action: Action


@dataclass(frozen=True, slots=True)
class RouterOverride:
    """Facts BGP-LS does not carry: a router's role and whether it takes SAV rules natively."""

    name: str
    role: Role = Role.CORE
    capability: Capability = Capability.SAVNET


@dataclass(frozen=True, slots=True)
class AlgorithmOverride:
    """The SAV algorithm for one interface (appliance.engine.policy.Algorithm)."""

    router: str
    interface: str
    algorithm: Algorithm


@dataclass(frozen=True, slots=True)
class EngineConfig:
    default_action: Action = field(default_factory=Action)
    algorithm: Algorithm = Algorithm.AUTO
    routers: tuple[RouterOverride, ...] = ()
    modes: tuple[ModeOverride, ...] = ()
    neighbors: tuple[Neighbor, ...] = ()
    algorithms: tuple[AlgorithmOverride, ...] = ()

    def policy(self) -> Policy:
        """The engine's Policy for this configuration."""
        return Policy(
            default_algorithm=self.algorithm,
            default_action=self.default_action,
            router_actions={m.router: m.action for m in self.modes if not m.interface},
            interface_actions={(m.router, m.interface): m.action for m in self.modes if m.interface},
            interface_algorithms={(a.router, a.interface): a.algorithm for a in self.algorithms},
        )

    def action_for(self, router: str, interface: str) -> Action:
        """Most specific first: router+interface, then router, then the default."""
        best: ModeOverride | None = None
        for m in self.modes:
            if m.router == router and m.interface in ("", interface):
                if best is None or (m.interface and not best.interface):
                    best = m
        return best.action if best else self.default_action


@dataclass(frozen=True, slots=True)
class FlowspecConfig:
    """Guardrails: more than `max_rules_per_router` rules for one router are refused unless `force`."""

    max_rules_per_router: int = 2000
    force: bool = False


@dataclass(frozen=True, slots=True)
class SteeringConfig:
    """[steering]: suspicious sources through inspection functions (engine/steering.py); the configured
    `[[steering.inspector]]` instances, which the API may add to or update (by name: the API's wins)."""

    policy: SteeringPolicy = field(default_factory=SteeringPolicy)
    inspectors: tuple[Inspector, ...] = ()


@dataclass(frozen=True, slots=True)
class CollaborationConfig:
    """[collaboration]: what this instance tells a collaborating AS (appliance/sources/collab.py
    `own_info`): the prefixes our AS originates; our addresses on the links toward it come from
    [[engine.neighbor]] `local_address`."""

    prefixes: tuple[str, ...] = ()
    #: the protocol side (appliance/collab/config.py: listen, certificates, peers); None: no exchange
    protocol: CollabConfig | None = None


@dataclass(frozen=True, slots=True)
class EnforcerConfig:
    """Where a router's savd-enforcer answers: an HTTP `url`, or a `netns` it runs in."""

    router: str
    url: str = ""
    netns: str = ""


@dataclass(frozen=True, slots=True)
class Config:
    source: Path
    appliance: ApplianceConfig
    api: ApiConfig = field(default_factory=ApiConfig)
    speakers: tuple[SpeakerConfig, ...] = ()
    rpki: RpkiConfig = field(default_factory=RpkiConfig)
    reports: ReportsConfig = field(default_factory=ReportsConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    flowspec: FlowspecConfig = field(default_factory=FlowspecConfig)
    enforcers: tuple[EnforcerConfig, ...] = ()
    bmp: tuple[BmpConfig, ...] = ()
    timers: TimersConfig = field(default_factory=TimersConfig)
    syslog: SyslogConfig = field(default_factory=SyslogConfig)
    steering: SteeringConfig = field(default_factory=SteeringConfig)
    collaboration: CollaborationConfig = field(default_factory=CollaborationConfig)

    def peers(self) -> tuple[tuple[SpeakerConfig, PeerConfig], ...]:
        return tuple((s, p) for s in self.speakers for p in s.peers)


# --- field checks ----------------------------------------------------------------------------------


def _name(t: Table, key: str, *, required: bool = False, interface: bool = False) -> str:
    """A router, speaker or interface name, checked against appliance.names (names become file names
    and must match what the API and reports accept); "" after recording the problem."""
    value = t.get_str(key, required=required)
    problem = (interface_name_problem if interface else router_name_problem)(value) if value else None
    if problem is not None:
        t.error(key, problem)
        return ""
    return value


def _check_ip(t: Table, key: str, value: str) -> str:
    """Canonical form of an IP address; an empty value stays empty (optional keys)."""
    if not value:
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        t.error(key, f"must be an IP address, got {value!r}")
        return value


def _check_ipv4(t: Table, key: str, value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        t.error(key, f"must be a dotted IPv4 router id, got {value!r}")
        return value


def _host_port(t: Table, key: str, default_port: int, required: bool = False) -> tuple[str, int]:
    """Read "host:port" ("[v6]:port" for IPv6); the port may be omitted.

    An IPv6 address needs its brackets whenever it appears: "::1:8180" is a valid address
    (::0.1.129.128), so without them savd would silently listen on an address the operator did not mean.
    """
    text = t.get_str(key, required=required)
    if not text:
        return "", default_port
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :] if end > 0 else ""
        if end < 0 or (rest and not rest.startswith(":")):
            t.error(key, f"must be host:port or [IPv6]:port, got {text!r}")
            return "", default_port
        host, port_text = text[1:end], rest[1:]
        if ":" not in host:
            t.error(key, f"brackets are for IPv6 addresses only, got {text!r}")
            return "", default_port
        if rest == ":":
            t.error(key, f"port missing after ':', got {text!r}")
            return host, default_port
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        if not port_text:
            t.error(key, f"port missing after ':', got {text!r}")
            return host, default_port
    elif ":" in text:
        t.error(key, f"an IPv6 address needs brackets: '[{text}]' for the address alone, or "
                     f"'[address]:port' (e.g. '[::1]:8180'), got {text!r}")
        return "", default_port
    if host not in ("localhost", ""):
        _check_ip(t, key, host)
    if not port_text:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        t.error(key, f"port must be 1-65535, got {port_text!r}")
        return host, default_port
    return host, int(port_text)


def _unique(tables: list[Table], what: str, *keys: str, at: str = "") -> None:
    """Report tables whose `keys` repeat an earlier table's (tables lacking the first key are skipped)."""
    seen: dict[tuple[str, ...], KeyPath] = {}
    for t in tables:
        if keys[0] not in t.data:
            continue
        name = tuple(str(t.data.get(k, "*")) for k in keys)
        path = (*t.path, at) if at else t.path
        if name in seen:
            t.problems.add(path, f"duplicate {what} {'/'.join(name)!r} (first at {format_path(seen[name])})")
        else:
            seen[name] = path


def _path(base: Path, text: str, t: Table | None = None, key: str = "") -> Path:
    """`text` as a path, "~" expanded, relative to `base`; a "~user" that does not exist or a NUL is an
    error of `key` (pathlib would raise RuntimeError, open() ValueError)."""
    if "\x00" in text:  # no file system takes it; open() would raise ValueError later, at start-up
        if t is not None:
            t.error(key, "a path cannot contain a NUL character")
        text = text.replace("\x00", "")
    p = Path(text)
    try:
        p = p.expanduser()
    except RuntimeError:
        if t is not None:
            t.error(key, f"cannot expand {text.split('/')[0]!r}: no such user's home directory")
    return p if p.is_absolute() else (base / p)


# --- sections --------------------------------------------------------------------------------------


def _appliance(t: Table, base: Path) -> ApplianceConfig:
    asn = t.get_int("asn", required=True, lo=1, hi=MAX_ASN)
    router_id = t.get_str("router_id", required=True)
    if router_id:
        router_id = _check_ipv4(t, "router_id", router_id)
    data_dir = _path(base, t.get_str("data_dir", default="data"), t, "data_dir")
    log = t.get_str("log", default="info").lower()
    if log not in LOG_LEVELS:
        t.error("log", f"must be one of {', '.join(LOG_LEVELS)}, got {log!r}")
        log = "info"
    return ApplianceConfig(asn, router_id, data_dir, log)


def _read_secret(t: Table, base: Path) -> str:
    """The token from `token`, `token_file` or `token_env` (at most one of them)."""
    given = [k for k in ("token", "token_file", "token_env") if k in t.data]
    if len(given) > 1:
        t.error(given[1], f"give only one of token, token_file, token_env (also has {given[0]})")
    token = t.get_str("token")
    file_name = t.get_str("token_file")
    env_name = t.get_str("token_env")
    if file_name and "\x00" in file_name:
        _path(base, file_name, t, "token_file")  # reports it; reading what is left could open another file
        return ""
    if file_name:
        try:
            token = _path(base, file_name, t, "token_file").read_text(encoding="utf-8").strip()
        except OSError as exc:
            t.error("token_file", f"cannot read {file_name}: {exc.strerror}")
        except UnicodeDecodeError:
            t.error("token_file", f"{file_name} is not UTF-8 text (a binary file?): the token must be "
                                  "printable ASCII")
            return ""
    elif env_name:
        token = os.environ.get(env_name, "")
    where = next((k for k in ("token_file", "token_env", "token") if k in t.data), "token")
    if token and not _token_ok(token):
        t.error(where, f"the token must be printable ASCII without spaces (it is sent as 'Authorization: "
                       f"Bearer <token>'), and at least {MIN_TOKEN_BYTES} bytes (got {len(token.encode())})")
        return ""
    return token


#: shortest API token accepted: 128 bits when random (`openssl rand -hex 16` gives 32 characters)
MIN_TOKEN_BYTES = 16


def _token_ok(token: str) -> bool:
    return len(token.encode()) >= MIN_TOKEN_BYTES and all("!" <= ch <= "~" for ch in token)


def _api(t: Table, base: Path) -> ApiConfig:
    host, port = _host_port(t, "listen", 8180)
    token = _read_secret(t, base)
    read_required = t.get_bool("read_token_required")
    if read_required and not token:
        where = "token_env" if "token_env" in t.data else "read_token_required"
        t.error(where, "read_token_required is true but the token is empty or not configured")
    body_limit = t.get_int("body_limit_bytes", default=DEFAULT_BODY_LIMIT_BYTES, lo=1024, hi=2**30)
    tenant_tables = t.tables("tenant")
    _unique(tenant_tables, "tenant name", "name")
    read = [(tt, _tenant(tt, base)) for tt in tenant_tables]
    for tt in tenant_tables:
        tt.finish()
    if tenant_tables and not read_required:
        t.error("read_token_required", "must be true when [[api.tenant]] is configured: otherwise anyone "
                                       "reads everything without a token, and tenant scopes hide nothing")
    _unique_tokens([(tt, tenant) for tt, tenant in read if tenant is not None], token)
    tenants = tuple(tenant for _, tenant in read if tenant is not None)
    return ApiConfig(host or "127.0.0.1", port, token, read_required, body_limit, tenants)


def _tenant(t: Table, base: Path) -> TenantConfig | None:
    """One [[api.tenant]]: name, token (token / token_file / token_env), prefixes, routers, interfaces."""
    name = _name(t, "name", required=True)
    known = len(t.problems.items)
    token = _read_secret(t, base)
    given = next((k for k in ("token_file", "token_env", "token") if k in t.data), "")
    if not given:
        t.problems.add(t.path, "needs one of token, token_file, token_env")
    elif not token and len(t.problems.items) == known:
        t.error(given, "the tenant's token is empty (for token_env: the variable is not set)")
    prefixes = tuple(p for i, text in enumerate(_str_list(t, "prefixes"))
                     if (p := _tenant_prefix(t, i, text)))
    routers = tuple(r for i, text in enumerate(_str_list(t, "routers"))
                    if (r := _listed_name(t, "routers", i, text)))
    interfaces = tuple(pair for i, text in enumerate(_str_list(t, "interfaces"))
                       if (pair := _router_interface(t, i, text)) is not None)
    if not (t.data.get("routers") or t.data.get("interfaces")):
        t.problems.add(t.path, "empty scope: give 'routers' and/or 'interfaces' (every answer of "
                               "the API is about a router's interface), and 'prefixes' for what the tenant "
                               "may see there")
    if not (name and token):
        return None
    return TenantConfig(name, token, prefixes, routers, interfaces)


def _str_list(t: Table, key: str) -> list[str]:
    """A list of strings; each item that is not a string is reported as `key[i]` and skipped."""
    value = t.data.get(key, [])
    t.used.add(key)
    if not isinstance(value, list):
        t.error(key, f"must be a list of strings, got {type(value).__name__}")
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append(item)
        else:
            t.problems.add((*t.path, key, i), f"must be a string, got {type(item).__name__}")
            out.append("")
    return out


def _tenant_prefix(t: Table, i: int, text: str) -> str:
    if not text:
        return ""
    try:
        prefix = canonical_prefix(text)
    except ValueError as exc:
        t.problems.add((*t.path, "prefixes", i), f"not a CIDR prefix with zero host bits: {exc}")
        return ""
    return prefix


def _listed_name(t: Table, key: str, i: int, text: str) -> str:
    problem = router_name_problem(text) if text else None
    if problem is not None:
        t.problems.add((*t.path, key, i), problem)
        return ""
    return text


def _router_interface(t: Table, i: int, text: str) -> tuple[str, str] | None:
    """ "router:interface"; split at the last ':' (router names may hold ':', interface names never)."""
    if not text:
        return None
    router, colon, interface = text.rpartition(":")
    problem = (f"must be 'router:interface' (e.g. 'r1:eth1'), got {text!r}" if not colon else
               router_name_problem(router) or interface_name_problem(interface))
    if problem is not None:
        t.problems.add((*t.path, "interfaces", i), problem)
        return None
    return router, interface


def _unique_tokens(tenants: list[tuple[Table, TenantConfig]], operator: str) -> None:
    """A token names one principal: the operator's or one tenant's. The message never shows the token."""
    seen: dict[str, str] = {operator: "the operator's [api] token"} if operator else {}
    for table, tenant in tenants:
        first = seen.get(tenant.token)
        if first is not None:
            where = next((k for k in ("token_file", "token_env", "token") if k in table.data), "token")
            table.error(where, f"duplicate token: tenant {tenant.name!r} has the same token as {first}")
        seen.setdefault(tenant.token, f"tenant {tenant.name!r}")


_DEFAULT_FAMILIES = (Family.BGP_LS, Family.IPV4_FLOWSPEC, Family.IPV6_FLOWSPEC)
FLOWSPEC_FAMILIES = (Family.IPV4_FLOWSPEC, Family.IPV6_FLOWSPEC)  # all a gobgp peer carries, its default


def _peer(t: Table, default_families: tuple[Family, ...] = _DEFAULT_FAMILIES) -> PeerConfig | None:
    address = _check_ip(t, "address", t.get_str("address", required=True))
    asn = t.get_int("asn", required=True, lo=1, hi=MAX_ASN)
    router = _name(t, "router", required=True)
    families = t.choices("families", Family, default_families)
    local = _check_ip(t, "local_address", t.get_str("local_address"))
    passive = t.get_bool("passive")
    if not (address and router):
        return None
    return PeerConfig(address, asn, router, families, local, passive)


def _check_gobgp(t: Table, api: str, peer_tables: list[Table], peers: tuple[PeerConfig, ...]) -> None:
    """GoBGP pushes FlowSpec only, and sends its whole RIB to every neighbour: savd runs one managed
    gobgpd per router, and an external one (`api`) may serve one router only."""
    if not peer_tables:
        t.error("type", "a gobgp speaker needs [[speaker.peers]] (the routers it pushes FlowSpec to)")
    for pt, peer in zip(peer_tables, peers, strict=False):
        other = [f.value for f in peer.families if f not in FLOWSPEC_FAMILIES]
        if other:
            pt.error("families", f"a gobgp speaker carries ipv4-flowspec/ipv6-flowspec only, got "
                                 f"{', '.join(other)} (BGP-LS goes through an exabgp speaker)")
    routers = sorted({p.router for p in peers})
    if api and len(routers) > 1:
        t.error("api", f"an external gobgpd sends its whole RIB to every neighbour: one router per speaker, "
                       f"got {', '.join(routers)} (omit 'api' and savd runs one gobgpd per router)")


def _speaker(t: Table, appliance: ApplianceConfig) -> SpeakerConfig | None:
    name = _name(t, "name", required=True)  # names a work directory under data_dir/speakers
    kind = t.choice("type", SpeakerType, required=True)
    asn = t.get_int("asn", default=appliance.asn, lo=1, hi=MAX_ASN)
    router_id = t.get_str("router_id")
    router_id = _check_ipv4(t, "router_id", router_id) if router_id else appliance.router_id
    host, port = _host_port(t, "listen", 179)
    netns = t.get_str("netns")
    api = t.get_str("api")
    if kind is SpeakerType.EXABGP and api:
        t.error("api", "only gobgp speakers take 'api'")
    peer_tables = t.tables("peers")
    defaults = FLOWSPEC_FAMILIES if kind is SpeakerType.GOBGP else _DEFAULT_FAMILIES
    peers = read_each(peer_tables, lambda pt: _peer(pt, defaults))
    if kind is SpeakerType.GOBGP:
        _check_gobgp(t, api, peer_tables, peers)
    # a router may have several sessions (IPv4 and IPv6), an address only one
    _unique(peer_tables, "peer address", "address", at="address")
    if not name or kind is None:
        return None
    return SpeakerConfig(name, kind, asn, router_id, host, port, netns, api, peers)


def _cache(t: Table) -> RtrCacheConfig | None:
    name = t.get_str("name")
    host = t.get_str("host", required=True)
    port = t.get_int("port", default=323, lo=1, hi=65535)
    preference = t.get_int("preference", default=1, lo=1, hi=255)
    version = t.get_int("version", default=1, lo=0, hi=2)
    netns = t.get_str("netns")
    if not host:
        return None
    return RtrCacheConfig(name or f"{host}:{port}", host, port, preference, version, netns)


def _rpki_file(base: Path) -> Callable[[Table], RpkiFileConfig | None]:
    def read(t: Table) -> RpkiFileConfig | None:
        text = t.get_str("path", required=True)
        fmt = t.choice("format", RpkiFileFormat, default=RpkiFileFormat.AUTO) or RpkiFileFormat.AUTO
        reload_s = t.get_float("reload_s", 60.0)
        return RpkiFileConfig(_path(base, text, t, "path"), fmt, reload_s) if text else None

    return read


def _rpki(t: Table, base: Path) -> RpkiConfig:
    cache_tables = t.tables("cache")
    caches = read_each(cache_tables, _cache)
    _unique(cache_tables, "cache name", "name")
    files = read_each(t.tables("file"), _rpki_file(base))
    stale = t.get_float("stale_after_s", 3600.0, lo=1.0)
    expire = t.get_float("expire_after_s", 7200.0, lo=1.0)
    if expire < stale:
        t.error("expire_after_s", f"must not be less than stale_after_s ({stale})")
    return RpkiConfig(caches, files, stale, expire)


def _action(t: Table, default: Action) -> Action:
    mode = t.choice("mode", Mode, default=default.mode) or default.mode
    rate = t.get_float("rate", default.rate)
    redirect = t.get_str("redirect", default=default.redirect)
    if mode is Mode.RATE_LIMIT and rate <= 0:
        t.error("rate" if "rate" in t.data else "mode", "rate-limit needs 'rate' > 0 (bytes per second)")
    if mode is Mode.REDIRECT:
        asn_part, _, value = redirect.partition(":")
        if not (asn_part.isdigit() and value.isdigit()):
            t.error("redirect" if "redirect" in t.data else "mode",
                    f"redirect needs 'redirect' as ASN:VALUE (route target), got {redirect!r}")
    return Action(mode, rate, redirect)


def _router(t: Table) -> RouterOverride | None:
    name = _name(t, "name", required=True)
    role = t.choice("role", Role, default=Role.CORE) or Role.CORE
    capability = t.choice("capability", Capability, default=Capability.SAVNET) or Capability.SAVNET
    return RouterOverride(name, role, capability) if name else None


def _mode(default: Action) -> Callable[[Table], ModeOverride | None]:
    def read(t: Table) -> ModeOverride | None:
        router = _name(t, "router", required=True)
        interface = _name(t, "interface", interface=True)
        action = _action(t, default)
        return ModeOverride(router, interface, action) if router else None

    return read


def _neighbor(t: Table) -> Neighbor | None:
    router = _name(t, "router", required=True)
    interface = _name(t, "interface", required=True, interface=True)
    asn = t.get_int("asn", required=True, lo=1, hi=MAX_ASN)
    rel = t.choice("relationship", Relationship, required=True)
    address = _check_ip(t, "address", t.get_str("address"))
    local_address = _check_ip(t, "local_address", t.get_str("local_address"))
    if not (router and interface and asn and rel):
        return None
    return Neighbor(router, interface, asn, rel, address, local_address)


def _engine(t: Table) -> EngineConfig:
    default_table = t.table("default")
    default = _action(default_table, Action())
    default_table.finish()
    algorithm = t.choice("algorithm", Algorithm, default=Algorithm.AUTO) or Algorithm.AUTO
    router_tables, mode_tables, neighbor_tables = t.tables("router"), t.tables("mode"), t.tables("neighbor")
    algorithm_tables = t.tables("interface_algorithm")
    routers = read_each(router_tables, _router)
    modes = read_each(mode_tables, _mode(default))
    neighbors = read_each(neighbor_tables, _neighbor)
    algorithms = read_each(algorithm_tables, _algorithm)
    _unique(router_tables, "router", "name")
    _unique(mode_tables, "mode for", "router", "interface")
    _unique(neighbor_tables, "neighbor", "router", "interface", "asn")
    _unique(algorithm_tables, "algorithm for", "router", "interface")
    return EngineConfig(default, algorithm, routers, modes, neighbors, algorithms)


def _algorithm(t: Table) -> AlgorithmOverride | None:
    router = _name(t, "router", required=True)
    interface = _name(t, "interface", required=True, interface=True)
    algorithm = t.choice("algorithm", Algorithm, required=True)
    return AlgorithmOverride(router, interface, algorithm) if router and interface and algorithm else None


def _bmp(t: Table) -> BmpConfig | None:
    name = t.get_str("name", default="bmp")
    host, port = _host_port(t, "listen", 11019, required=True)
    netns = t.get_str("netns")
    routers_table = t.table("routers")
    routers: list[tuple[str, str]] = []
    for address, router in sorted(routers_table.data.items()):
        routers_table.used.add(address)
        canonical = _check_ip(routers_table, address, address)
        problem = router_name_problem(router)
        if problem is not None:
            routers_table.error(address, f"must be a router name: {problem}")
            continue
        routers.append((canonical, router))
    if not host:
        return None
    return BmpConfig(name, host, port, netns, tuple(routers))


#: [timers] keys, each overridable by the environment variable SAVD_<KEY>: (default, minimum).
_TIMERS = {f.name: f.default for f in dataclasses.fields(TimersConfig)}


def _timers(t: Table, problems: Problems) -> TimersConfig:
    values: dict[str, float] = {}
    for key, default in _TIMERS.items():
        values[key] = t.get_float(key, float(default))  # type: ignore[arg-type]
        env = f"SAVD_{key.upper()}"
        text = os.environ.get(env)
        if text is None:
            continue
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not (value >= 0.0 and math.isfinite(value)):
            problems.add((), f"environment variable {env} must be a number of seconds >= 0, got {text!r}")
            continue
        values[key] = value
    return TimersConfig(**values)


def _flowspec(t: Table) -> FlowspecConfig:
    max_rules = t.get_int("max_rules_per_router", default=2000, lo=1, hi=10_000_000)
    return FlowspecConfig(max_rules, t.get_bool("force"))


def _inspector(t: Table) -> Inspector | None:
    name = _name(t, "name", required=True)
    text = t.get_str("address", required=True)
    try:
        address = str(ipaddress.ip_address(text)) if text else ""
    except ValueError:
        t.error("address", f"must be an IP address (the inspector inside the router network), got {text!r}")
        address = ""
    capacity = t.get_float("capacity", 0.0)
    if "capacity" not in t.data:
        t.error("capacity", "missing required key 'capacity' (> 0)")
    elif capacity <= 0:
        t.error("capacity", f"must be > 0, got {capacity}")
    return Inspector(name, address, capacity) if name and address and capacity > 0 else None


def _steering(t: Table, asn: int) -> SteeringConfig:
    fallback = t.choice("fallback", SteeringFallback, default=SteeringFallback.ACCEPT) \
        or SteeringFallback.ACCEPT
    scale_out = t.get_float("scale_out_at", 0.8)
    scale_in = t.get_float("scale_in_at", 0.2)
    if scale_in >= scale_out:
        t.error("scale_in_at", f"must be below scale_out_at ({scale_out}), got {scale_in}")
    rpki_invalid = t.get_bool("rpki_invalid", False)
    sav_unknown = t.get_bool("sav_unknown", False)
    form = t.choice("ipv6_redirect", RedirectForm, default=RedirectForm.ROUTE_TARGET) \
        or RedirectForm.ROUTE_TARGET
    tables = t.tables("inspector")
    inspectors = read_each(tables, _inspector)
    _unique(tables, "inspector", "name")
    policy = SteeringPolicy(fallback, scale_out, scale_in, rpki_invalid, sav_unknown, form, asn)
    return SteeringConfig(policy, inspectors)


def _collaboration(t: Table, base: Path) -> CollaborationConfig:
    """`prefixes` (what we tell a collaborating AS) here; the protocol's keys (listen, certificates,
    [[collaboration.peer]]) through appliance/collab/config.py, when the section has a `listen`."""
    prefixes = (_config_prefix(t, "prefixes", i, text) for i, text in enumerate(_str_list(t, "prefixes")))
    protocol = read_collab(t, base) if "listen" in t.data or "peer" in t.data else None
    return CollaborationConfig(tuple(dict.fromkeys(p for p in prefixes if p)), protocol)


def _config_prefix(t: Table, key: str, i: int, text: str) -> str:
    try:
        return canonical_prefix(text)
    except ValueError as exc:
        t.problems.add((*t.path, key, i), str(exc))
        return ""


def _enforcer(t: Table) -> EnforcerConfig | None:
    router = _name(t, "router", required=True)
    url = t.get_str("url")
    netns = t.get_str("netns")
    if url and not url.startswith(("http://", "https://")):
        t.error("url", f"must be an http:// or https:// URL, got {url!r}")
    if not (url or netns):
        t.problems.add(t.path, "needs 'url' or 'netns'")
    return EnforcerConfig(router, url, netns) if router else None


def _syslog(t: Table) -> SyslogConfig:
    target = t.get_str("target")
    if target:
        try:
            SyslogTarget.parse(target)
        except ValueError as exc:
            t.error("target", str(exc))
    facility = t.get_str("facility", "daemon")
    if facility not in FACILITIES:
        t.error("facility", f"must be one of {', '.join(FACILITIES)}, got {facility!r}")
    level = t.get_str("min_severity", "info")
    if level not in {str(s) for s in Severity}:
        t.error("min_severity", f"must be one of {', '.join(map(str, Severity))}, got {level!r}")
        level = "info"
    return SyslogConfig(target, facility, t.get_str("app_name", "savd") or "savd", t.get_str("hostname"),
                        Severity(level))


# --- entry points ----------------------------------------------------------------------------------


def parse_config(text: str, source: Path) -> Config:
    """Validate TOML text; raise ConfigError listing every problem (with line numbers)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(source), [ConfigProblem("", _decode_line(exc), f"not valid TOML: {exc}")]) \
            from exc
    problems = Problems(LineIndex(text))
    root = Table(data, (), problems)
    base = source.parent
    sections: dict[str, Table] = {}

    def section(key: str) -> Table:
        sections[key] = root.table(key)
        return sections[key]

    appliance = _appliance(section("appliance"), base)
    if "appliance" not in data:
        problems.add((), "missing required table [appliance]")
    api = _api(section("api"), base)
    speaker_tables = root.tables("speaker")
    _unique(speaker_tables, "speaker name", "name")
    speakers = read_each(speaker_tables, lambda t: _speaker(t, appliance))
    rpki = _rpki(section("rpki"), base)
    reports_table = section("reports")
    report_file = reports_table.get_str("file")
    reports = ReportsConfig(_path(base, report_file, reports_table, "file") if report_file else None)
    engine = _engine(section("engine"))
    flowspec = _flowspec(section("flowspec"))
    enforcer_tables = root.tables("enforcer")
    enforcers = read_each(enforcer_tables, _enforcer)
    _unique(enforcer_tables, "enforcer for router", "router")
    bmp_tables = root.tables("bmp")
    bmp = read_each(bmp_tables, _bmp)
    _unique(bmp_tables, "bmp station", "name")
    timers = _timers(section("timers"), problems)
    syslog = _syslog(section("syslog"))
    steering = _steering(section("steering"), appliance.asn)
    collaboration = _collaboration(section("collaboration"), base)
    for t in sections.values():
        t.finish()
    root.finish()
    if problems.items:
        raise ConfigError(str(source), problems.items)
    return Config(source, appliance, api, speakers, rpki, reports, engine, flowspec, enforcers, bmp, timers,
                  syslog=syslog, steering=steering, collaboration=collaboration)


def _decode_line(exc: tomllib.TOMLDecodeError) -> int:
    lineno = getattr(exc, "lineno", 0)
    if lineno:
        return int(lineno)
    text = str(exc)
    marker = "line "
    if marker in text:
        digits = text.split(marker, 1)[1].split(",")[0].split(")")[0]
        if digits.isdigit():
            return int(digits)
    return 0


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a configuration file; raise ConfigError (never OSError) on any problem."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(str(source), [ConfigProblem("", 0, f"cannot read: {reason}")]) from exc
    return parse_config(text, source.resolve())
