"""The gateway's configuration: one frozen dataclass tree loaded from TOML.

Owns the schema (sections and keys of ``config/gateway.example.toml``, which documents
every key), defaults, and validation. ``load(path)`` returns ``Settings`` or raises
``ConfigError`` whose ``.problems`` lists EVERY problem as ``"FILE: key: why"``, e.g.
``gateway.toml: numbers[2].number: '+1555' is not E.164 or a 5-6 digit short code``
(array indexes count from 0). ``check(path)`` returns that list (empty = valid).

Rules:
- Unknown keys are errors (with a "did you mean" hint); every key has a default except
  the identifying ones (account sid, carrier name, number, route prefix ...).
- Field checks live on the fields (``opt``/``req`` from ``settings_check``); checks that
  span sections are the ``settings_cross.CROSS_CHECKS`` table. No wall of ifs.
- Secrets: ``auth_token`` | ``auth_token_file`` (accounts), ``password`` |
  ``password_file`` (SMPP, Redis). A ``*_file`` names a file whose content (one trailing
  newline stripped) becomes the secret; relative names resolve against
  ``$CREDENTIALS_DIRECTORY`` when set (systemd ``LoadCredential=``), else against the config
  file's directory. After ``load`` the plain key always holds the secret.
- ``store.path`` (SQLite) relative to ``$STATE_DIRECTORY`` when set (systemd
  ``StateDirectory=``), else to the current directory; ``load`` makes it absolute.
- Numbers' ``type`` defaults from the number: 5-6 digits = short_code, +1 8XX toll-free
  area codes = toll_free, else long_code.
- ``[[alpha_senders]]`` are alphanumeric sender IDs (send-only, never in
  IncomingPhoneNumbers): their own table, not a ``type`` of ``[[numbers]]``, because
  none of a number's inbound/voice keys apply and ``sender_id`` is not a number.
  ``(account, sender_id)`` is unique, compared case-insensitively.
- Dict-valued keys (``simulator.dlr_states``) are plain dicts: treat them as read-only.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from gateway import settings_check as sc
from gateway.settings_check import opt, req
from gateway.settings_cross import CROSS_CHECKS

SENDER_CLASSES = ("long_code", "toll_free", "short_code")
DLR_STATES = sc.DLR_STATES


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` holds one ``"FILE: key: why"`` per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    listen: str = opt("127.0.0.1:8080", sc.hostport)
    public_url: str = opt("http://127.0.0.1:8080", sc.nonempty, sc.url)
    max_body_bytes: int = opt(65536, sc.at_least(1024))
    max_connections: int = opt(1024, sc.at_least(1))


@dataclass(frozen=True, kw_only=True)
class StoreSettings:
    backend: str = opt("sqlite", sc.one_of("sqlite", "redis"))
    path: str = opt("var/gateway.db", sc.nonempty)
    writer: str = opt("process", sc.one_of("process", "thread"))
    url: str = opt("", sc.redis_url)
    password: str = opt("", repr=False)
    password_file: str = opt("")
    tls: bool = opt(False)


@dataclass(frozen=True, kw_only=True)
class SipSettings:
    listen: str = opt("127.0.0.1:5060", sc.hostport)
    accept_register: bool = opt(False)   # answer REGISTER 200 without storing (softphones)
    allow_sip_dial: bool = opt(False)    # <Dial><Sip> may INVITE any SIP URI (SSRF: off)
    rtp_port_min: int = opt(10000, sc.between(0, 65535))
    rtp_port_max: int = opt(20000, sc.between(0, 65535))
    # SIP over TLS (RFC 3261 §26): empty tls_listen = off. tls_cert resolves against the
    # config file's directory, tls_key like secrets ($CREDENTIALS_DIRECTORY first).
    tls_listen: str = opt("", sc.hostport_or_empty)
    tls_cert: str = opt("")
    tls_key: str = opt("")
    # CA bundle (PEM) to verify TLS peers that are not configured trunks (<Dial><Sip> to a
    # sips: URI); "" = system CAs. Resolves against the config file's directory.
    tls_ca: str = opt("")


@dataclass(frozen=True, kw_only=True)
class WebhookSettings:
    allow_private: bool = opt(False)
    max_attempts: int = opt(5, sc.between(1, 50))
    sender: str = opt("inline", sc.one_of("inline", "process"))
    connect_timeout: float = opt(5.0, sc.at_least(0.1))
    read_timeout: float = opt(15.0, sc.at_least(0.1))
    total_timeout: float = opt(15.0, sc.at_least(0.1))
    max_body_bytes: int = opt(65536, sc.at_least(1024))
    backoff_initial: float = opt(1.0, sc.at_least(0.0))
    backoff_max: float = opt(300.0, sc.at_least(0.0))


@dataclass(frozen=True, kw_only=True)
class RoutingSettings:
    prefer_margin: float = opt(0.2, sc.between(0.0, 1.0))


@dataclass(frozen=True, kw_only=True)
class RateSettings:
    long_code: float = opt(1.0, sc.at_least(0.001))
    toll_free: float = opt(3.0, sc.at_least(0.001))
    short_code: float = opt(100.0, sc.at_least(0.001))
    alphanumeric: float = opt(10.0, sc.at_least(0.001))   # Twilio: 10 MPS outside +1
    queue_hours: float = opt(10.0, sc.at_least(0.0))

    def rate(self, sender_class: str) -> float:
        return float(getattr(self, sender_class))

    def capacity(self, sender_class: str) -> int:
        """Queue capacity in segments: rate * 3600 * queue_hours."""
        return int(self.rate(sender_class) * 3600 * self.queue_hours)


@dataclass(frozen=True, kw_only=True)
class SimulatorSettings:
    enabled: bool = opt(False)
    listen: str = opt("127.0.0.1:2775", sc.hostport)
    system_id: str = opt("")
    password: str = opt("", repr=False)
    dlr_delay_ms: int = opt(200, sc.at_least(0))
    dlr_states: dict[str, float] = opt({"DELIVRD": 1.0}, sc.nonempty)


@dataclass(frozen=True, kw_only=True)
class HealthSettings:
    """Mirrors ``gateway.core.health.HealthConfig`` key for key (a test keeps them equal)."""
    window_s: float = opt(10.0, sc.at_least(0.1))
    min_samples: float = opt(5.0, sc.at_least(0.0))
    error_bad: float = opt(0.5, sc.between(0.001, 1.0))
    timeout_bad: float = opt(0.2, sc.between(0.001, 1.0))
    throttle_bad: float = opt(0.5, sc.between(0.001, 1.0))
    latency_fast_s: float = opt(3.0, sc.at_least(0.01))
    latency_baseline_s: float = opt(300.0, sc.at_least(0.01))
    latency_floor: float = opt(0.05, sc.at_least(0.0))
    latency_min_samples: int = opt(20, sc.at_least(0))
    latency_ok_ratio: float = opt(2.0, sc.at_least(1.0))
    latency_bad_ratio: float = opt(10.0, sc.at_least(1.0))
    dlr_window_s: float = opt(60.0, sc.at_least(0.1))
    dlr_min_samples: float = opt(10.0, sc.at_least(0.0))
    dlr_ok: float = opt(0.8, sc.between(0.0, 1.0))
    dlr_bad: float = opt(0.2, sc.between(0.0, 1.0))
    options_window_s: float = opt(30.0, sc.at_least(0.1))
    options_min_samples: float = opt(3.0, sc.at_least(0.0))
    w_errors: float = opt(1.0, sc.between(0.0, 1.0))
    w_timeouts: float = opt(1.0, sc.between(0.0, 1.0))
    w_latency: float = opt(0.7, sc.between(0.0, 1.0))
    w_throttle: float = opt(0.4, sc.between(0.0, 1.0))
    w_dlr: float = opt(0.7, sc.between(0.0, 1.0))
    w_options: float = opt(0.4, sc.between(0.0, 1.0))
    open_below: float = opt(0.5, sc.between(0.0, 1.0))
    close_above: float = opt(0.7, sc.between(0.0, 1.0))
    cooldown_s: float = opt(5.0, sc.at_least(0.0))
    cooldown_max_s: float = opt(60.0, sc.at_least(0.0))
    stable_after_s: float = opt(60.0, sc.at_least(0.0))
    probe_rate: float = opt(1.0, sc.at_least(0.0))
    probes_to_close: int = opt(3, sc.at_least(1))
    ramp_s: float = opt(10.0, sc.at_least(0.0))
    ramp_floor: float = opt(0.1, sc.between(0.0, 1.0))
    score_cache_s: float = opt(0.05, sc.at_least(0.0))


@dataclass(frozen=True, kw_only=True)
class LoggingSettings:
    level: str = opt("info", sc.one_of("debug", "info", "warning", "error"))
    format: str = opt("text", sc.one_of("text", "json"))


@dataclass(frozen=True, kw_only=True)
class AccountSettings:
    sid: str = req(sc.sid("AC"))
    auth_token: str = opt("", repr=False)
    auth_token_file: str = opt("")
    friendly_name: str = opt("")


@dataclass(frozen=True, kw_only=True)
class SmppSettings:
    host: str = opt("127.0.0.1", sc.nonempty)
    port: int = opt(2775, sc.port)
    system_id: str = req(sc.nonempty)
    password: str = opt("", repr=False)
    password_file: str = opt("")
    system_type: str = opt("")
    bind: str = opt("transceiver", sc.one_of("transceiver", "tx_rx"))
    window: int = opt(64, sc.between(1, 65535))
    response_timeout: float = opt(5.0, sc.at_least(0.1))
    enquire_link_interval: float = opt(30.0, sc.at_least(0.1))
    max_tps: float = opt(0.0, sc.at_least(0.0))
    split: str = opt("udh8", sc.one_of("udh8", "udh16", "sar", "payload"))
    registered_delivery: int = opt(1, sc.between(0, 255))
    tls: bool = opt(False)
    reconnect_min: float = opt(1.0, sc.at_least(0.0))
    reconnect_max: float = opt(30.0, sc.at_least(0.0))
    cluster_binds: int = opt(1, sc.between(1, 1000))   # binds of this system_id across a Redis cluster


@dataclass(frozen=True, kw_only=True)
class SipTrunkSettings:
    host: str = opt("127.0.0.1", sc.nonempty)
    port: int = opt(5060, sc.port)
    transport: str = opt("udp", sc.one_of("udp", "tcp", "tls"))
    options_interval: float = opt(30.0, sc.at_least(0.1))
    tls_ca: str = opt("")           # PEM CA bundle to verify the trunk; "" = system CAs
    tls_verify: bool = opt(True)    # false: no certificate check (lab trunks only)


@dataclass(frozen=True, kw_only=True)
class CarrierSettings:
    name: str = req(sc.nonempty)
    priority: int = opt(1, sc.at_least(0))
    weight: float = opt(1.0, sc.at_least(0.0))
    smpp: SmppSettings | None = None
    sip: SipTrunkSettings | None = None


@dataclass(frozen=True, kw_only=True)
class RouteSettings:
    prefix: str = req(sc.prefix)
    carriers: tuple[str, ...] = req(sc.nonempty)


@dataclass(frozen=True, kw_only=True)
class NumberSettings:
    number: str = req(sc.sender)
    account: str = req(sc.sid("AC"))
    type: str = opt("", sc.one_of("", *SENDER_CLASSES))
    friendly_name: str = opt("")
    sms_url: str = opt("", sc.url)
    sms_method: str = opt("POST", sc.http_method)
    sms_fallback_url: str = opt("", sc.url)
    sms_fallback_method: str = opt("POST", sc.http_method)
    status_callback: str = opt("", sc.url)
    voice_url: str = opt("", sc.url)
    voice_method: str = opt("POST", sc.http_method)
    voice_fallback_url: str = opt("", sc.url)
    voice_fallback_method: str = opt("POST", sc.http_method)


@dataclass(frozen=True, kw_only=True)
class AlphaSenderSettings:
    sender_id: str = req(sc.alpha_sender_id)
    account: str = req(sc.sid("AC"))
    friendly_name: str = opt("")
    status_callback: str = opt("", sc.url)
    prefixes: tuple[str, ...] = opt([], sc.prefix)   # destinations allowed; [] = all but +1


@dataclass(frozen=True, kw_only=True)
class MessagingServiceSettings:
    sid: str = req(sc.sid("MG"))
    account: str = req(sc.sid("AC"))
    friendly_name: str = opt("")
    numbers: tuple[str, ...] = opt([], sc.sender)
    sticky_sender: bool = opt(True)
    area_code_geomatch: bool = opt(False)
    sms_url: str = opt("", sc.url)
    sms_method: str = opt("POST", sc.http_method)
    sms_fallback_url: str = opt("", sc.url)
    status_callback: str = opt("", sc.url)
    validity_period: int = opt(14400, sc.between(1, 36000))
    alpha_sender: str = opt("")       # a sender_id of [[alpha_senders]] of the same account


@dataclass(frozen=True, kw_only=True)
class Settings:
    api: ApiSettings = field(default_factory=ApiSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    sip: SipSettings = field(default_factory=SipSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    rates: RateSettings = field(default_factory=RateSettings)
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    accounts: tuple[AccountSettings, ...] = ()
    carriers: tuple[CarrierSettings, ...] = ()
    routes: tuple[RouteSettings, ...] = ()
    numbers: tuple[NumberSettings, ...] = ()
    alpha_senders: tuple[AlphaSenderSettings, ...] = ()
    messaging_services: tuple[MessagingServiceSettings, ...] = ()
    source: str = field(default="", compare=False, metadata={"internal": True})

    # -- lookups (None when absent) --------------------------------------------------------
    def account(self, sid: str) -> AccountSettings | None:
        return _index(self, "accounts", "sid").get(sid)

    def number(self, number: str) -> NumberSettings | None:
        return _index(self, "numbers", "number").get(number)

    def carrier(self, name: str) -> CarrierSettings | None:
        return _index(self, "carriers", "name").get(name)

    def messaging_service(self, sid: str) -> MessagingServiceSettings | None:
        return _index(self, "messaging_services", "sid").get(sid)


def _index(s: Settings, section: str, key: str) -> dict[str, Any]:
    cache = s.__dict__.setdefault("_indexes", {})
    if section not in cache:
        cache[section] = {getattr(x, key): x for x in getattr(s, section)}
    return cache[section]


# -- secrets, paths and derived defaults (run after the field checks) ----------------------

_SECRETS = {  # dataclass -> (secret key, file key, required)
    AccountSettings: ("auth_token", "auth_token_file", True),
    SmppSettings: ("password", "password_file", True),
    StoreSettings: ("password", "password_file", False),
}


def _secret(obj: Any, where: str, config_dir: str, problems: list[str]) -> Any:
    key, file_key, required = _SECRETS[type(obj)]
    inline, name = getattr(obj, key), getattr(obj, file_key)
    if inline and name:
        problems.append(f"{where}.{key}: set either {key} or {file_key}, not both")
    elif name:
        value, why = sc.read_secret(name, config_dir)
        if why:
            problems.append(f"{where}.{file_key}: {why}")
        return dataclasses.replace(obj, **{key: value or ""})
    elif required and not inline:
        problems.append(f"{where}: missing credentials ({key} or {file_key})")
    return obj


def _finish(s: Settings, config_dir: str, problems: list[str]) -> Settings:
    accounts = tuple(_secret(a, f"accounts[{i}]", config_dir, problems)
                     for i, a in enumerate(s.accounts))
    carriers = []
    for i, c in enumerate(s.carriers):
        if c.smpp is not None:
            smpp = _secret(c.smpp, f"carriers[{i}].smpp", config_dir, problems)
            c = dataclasses.replace(c, smpp=smpp)
        carriers.append(c)
    store = _secret(s.store, "store", config_dir, problems)
    sip, carriers = _sip_paths(s.sip, carriers, config_dir)
    if store.backend == "sqlite" and store.path != ":memory:":
        base = os.environ.get("STATE_DIRECTORY", "").split(":")[0] or os.getcwd()
        store = dataclasses.replace(store, path=os.path.abspath(sc.resolve(store.path, base)))
    numbers = tuple(n if n.type else dataclasses.replace(n, type=sc.sender_class(n.number))
                    for n in s.numbers)
    return dataclasses.replace(s, accounts=accounts, carriers=tuple(carriers), store=store,
                               numbers=numbers, sip=sip)


def _sip_paths(sip: SipSettings, carriers: list, config_dir: str):
    """Absolute SIP TLS file names: tls_cert, tls_ca and trunks' tls_ca against the config dir,
    tls_key against $CREDENTIALS_DIRECTORY when set (systemd LoadCredential=)."""
    if sip.tls_cert:
        sip = dataclasses.replace(sip, tls_cert=sc.resolve(sip.tls_cert, config_dir))
    if sip.tls_key:
        key_dir = os.environ.get("CREDENTIALS_DIRECTORY") or config_dir
        sip = dataclasses.replace(sip, tls_key=sc.resolve(sip.tls_key, key_dir))
    if sip.tls_ca:
        sip = dataclasses.replace(sip, tls_ca=sc.resolve(sip.tls_ca, config_dir))
    out = []
    for c in carriers:
        if c.sip is not None and c.sip.tls_ca:
            trunk = dataclasses.replace(c.sip, tls_ca=sc.resolve(c.sip.tls_ca, config_dir))
            c = dataclasses.replace(c, sip=trunk)
        out.append(c)
    return sip, out


# -- entry points ----------------------------------------------------------------------------

def _load(path: str | os.PathLike) -> tuple[Settings | None, list[str]]:
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        return None, [f"{name}: cannot read: {e.strerror or e}"]
    except tomllib.TOMLDecodeError as e:
        return None, [f"{name}: TOML syntax: {e}"]
    problems: list[str] = []
    s = sc.build(Settings, raw, "", problems)
    s = _finish(s, os.path.dirname(os.path.abspath(name)), problems)
    for cross in CROSS_CHECKS:
        problems.extend(f"{key}: {why}" for key, why in cross(s))
    s = dataclasses.replace(s, source=name)
    return s, [f"{name}: {p}" for p in problems]


def load(path: str | os.PathLike) -> Settings:
    """Read and validate ``path``; raise ``ConfigError`` listing every problem."""
    s, problems = _load(path)
    if problems or s is None:
        raise ConfigError(problems)
    return s


def check(path: str | os.PathLike) -> list[str]:
    """Every problem in ``path`` as ``"FILE: key: why"``; empty when valid."""
    return _load(path)[1]
