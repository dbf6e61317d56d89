"""Tests for gateway.settings: the shipped configs, every validation rule, secrets, lookups."""

import dataclasses
import os
import re
import typing
from pathlib import Path

import pytest

from gateway import settings
from gateway.settings import ConfigError

ROOT = Path(__file__).resolve().parent.parent
AC = "AC0123456789abcdef0123456789abcdef"
AC2 = "ACffffffffffffffffffffffffffffffff"
MG = "MG0123456789abcdef0123456789abcdef"

BASE = f"""
[[accounts]]
sid = "{AC}"
auth_token = "tok"

[[carriers]]
name = "a"
  [carriers.smpp]
  system_id = "gw"
  password = "pw"

[[routes]]
prefix = "+"
carriers = ["a"]

[[numbers]]
number = "+15005550006"
account = "{AC}"
"""


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))


def problems_for(tmp_path: Path, text: str) -> list[str]:
    return settings.check(write(tmp_path, text))


# -- shipped configs ---------------------------------------------------------------------------

def test_dev_config_is_self_contained():
    s = settings.load(ROOT / "config/gateway.dev.toml")
    assert s.api.listen == "127.0.0.1:8080"
    assert s.store.backend == "sqlite" and s.store.path.endswith("var/gateway.db")
    assert s.simulator.enabled and s.simulator.listen == "127.0.0.1:2775"
    assert s.webhooks.allow_private is True
    acct = s.account(AC)
    assert acct is not None and acct.auth_token == "secret"
    sim = s.carrier("sim")
    assert sim is not None and (sim.smpp.host, sim.smpp.port) == ("127.0.0.1", 2775)
    assert [r.prefix for r in s.routes] == ["+"] and s.routes[0].carriers == ("sim",)
    assert sorted(n.type for n in s.numbers) == ["long_code", "short_code", "toll_free"]
    assert s.number("55501").type == "short_code"
    assert s.messaging_service(MG).numbers[0] in {n.number for n in s.numbers}


def test_example_config_is_valid():
    s = settings.load(ROOT / "config/gateway.example.toml")
    assert s.carrier("carrier-a").sip.port == 5070


def _schema_keys(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        tp = hints[f.name]
        inner = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        target = tp if dataclasses.is_dataclass(tp) else (inner[0] if inner else None)
        if target is not None:
            yield from _schema_keys(target, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f.name


def test_every_key_is_documented_in_the_example():
    text = (ROOT / "config/gateway.example.toml").read_text()
    missing = [path for path, key in _schema_keys(settings.Settings)
               if not re.search(rf"^\s*#?\s*{key}\s*=.*#", text, re.M)
               and not re.search(rf"^\s*#?\s*{key}\s*=", text, re.M)]
    assert missing == []
    # and every active line carries a comment or sits under a commented block
    assert len(re.findall(r"#", text)) > 80


# -- problems ----------------------------------------------------------------------------------

def test_minimal_config_loads_with_defaults(tmp_path):
    s = settings.load(write(tmp_path, BASE))
    assert s.api.listen == "127.0.0.1:8080" and s.webhooks.max_attempts == 5
    assert s.carrier("a").smpp.split == "udh8" and s.carrier("a").smpp.window == 64
    assert s.number("+15005550006").type == "long_code"
    assert s.rates.capacity("long_code") == 36000
    assert s.store.path == str(tmp_path / "state" / "var/gateway.db")
    assert s.source.endswith("gateway.toml")


def test_every_problem_is_reported_with_file_and_key(tmp_path):
    text = BASE + f"""
[api]
listen = "localhost"
colour = "blue"

[[accounts]]
sid = "AC123"

[[carriers]]
name = "a"
priority = "high"
  [carriers.smpp]
  system_id = "gw"
  bind = "sideways"

[[routes]]
prefix = "+44"
carriers = ["nope"]

[[numbers]]
number = "+1555x"
account = "{AC2}"

[[numbers]]
number = "+15005550006"
account = "{AC}"
type = "short_code"

[[messaging_services]]
sid = "MGxyz"
account = "{AC}"
numbers = ["+19999999999"]
"""
    probs = problems_for(tmp_path, text)
    f = str(tmp_path / "gateway.toml")
    assert all(p.startswith(f + ": ") for p in probs)
    keys = [p[len(f) + 2:] for p in probs]
    expected = [
        "api.listen: 'localhost' is not HOST:PORT",
        "api.colour: unknown key",
        "accounts[1].sid: 'AC123' is not a AC SID",
        "accounts[1]: missing credentials (auth_token or auth_token_file)",
        "carriers[1].priority: 'high' should be an integer",
        "carriers[1].smpp.bind: 'sideways' is not one of transceiver, tx_rx",
        "carriers[1].smpp: missing credentials",
        "carriers[1].name: 'a' is defined twice",
        "routes[1].carriers[0]: 'nope' is not in [[carriers]]",
        "numbers[1].number: '+1555x' is not E.164 or a 5-6 digit short code",
        f"numbers[1].account: '{AC2}' is not in [[accounts]]",
        "numbers[2].number: '+15005550006' is defined twice",
        "numbers[2].type: 'short_code' does not fit number",
        "messaging_services[0].sid: 'MGxyz' is not a MG SID",
        "messaging_services[0].numbers[0]: '+19999999999' is not in [[numbers]]",
    ]
    for want in expected:
        assert any(k.startswith(want) for k in keys), (want, keys)
    with pytest.raises(ConfigError) as ei:
        settings.load(tmp_path / "gateway.toml")
    assert ei.value.problems == probs


@pytest.mark.parametrize("snippet, want", [
    ("[api]\nmax_connections = true", "api.max_connections: True should be an integer"),
    ("[webhooks]\nconnect_timeout = 'x'", "webhooks.connect_timeout: 'x' should be a number"),
    ("[webhooks]\nallow_private = 1", "webhooks.allow_private: 1 should be true or false"),
    ("[routing]\nprefer_margin = 3", "routing.prefer_margin: 3.0 is not between 0.0 and 1.0"),
    ("[rates]\nlong_cod = 2", "rates.long_cod: unknown key (did you mean 'long_code'?)"),
    ("[logging]\nformat = 'xml'", "logging.format: 'xml' is not one of text, json"),
    ("[simulator]\ndlr_states = { DELIVERED = 1.0 }", "simulator.dlr_states.DELIVERED: unknown DLR state"),
    ("[simulator]\ndlr_states = { UNDELIV = 1.5 }", "simulator.dlr_states.UNDELIV: 1.5 is not a probability"),
    ("[health]\nopen_below = 0.8\nclose_above = 0.6", "health.close_above: 0.6 is below health.open_below"),
    ("[store]\nbackend = 'redis'", 'store.url: required when backend = "redis"'),
    ("[store]\nurl = 'http://x'", "store.url: 'http://x' is not redis://"),
    ("[sip]\nlisten = '[::1]:99999'", "sip.listen: '[::1]:99999' is not HOST:PORT"),
    ("[[routes]]\nprefix = '44'\ncarriers = []", "routes[1].prefix: '44' is not a route prefix"),
    ("[[routes]]\nprefix = '+44'\ncarriers = []", "routes[1].carriers: must not be empty"),
    ("[[carriers]]\nname = 'b'", "carriers[1]: needs a [carriers.smpp] or [carriers.sip] table"),
    ("[[numbers]]\naccount = 'AC0123456789abcdef0123456789abcdef'", "numbers[1].number: missing (required)"),
    ("[[numbers]]\nnumber = '+15005550007'\naccount = 'AC0123456789abcdef0123456789abcdef'\nsms_url = 'ftp://x'",
     "numbers[1].sms_url: 'ftp://x' is not an http(s) URL"),
])
def test_single_problem(tmp_path, snippet, want):
    probs = problems_for(tmp_path, BASE + "\n" + snippet + "\n")
    assert any(want in p for p in probs), probs


def test_section_of_wrong_type(tmp_path):
    probs = problems_for(tmp_path, "api = 3\n" + BASE)
    assert [p.split(": ", 1)[1] for p in probs] == ["api: 3 should be a table"]


def test_valid_listen_forms(tmp_path):
    text = BASE + "[api]\nlisten = '[::1]:0'\n[sip]\nlisten = 'gw.example.net:5060'\n"
    assert problems_for(tmp_path, text) == []


def test_service_number_of_another_account(tmp_path):
    text = BASE + f"""
[[accounts]]
sid = "{AC2}"
auth_token = "t2"

[[messaging_services]]
sid = "{MG}"
account = "{AC2}"
numbers = ["+15005550006"]
"""
    assert any("messaging_services[0].numbers[0]: '+15005550006' belongs to another account" in p
               for p in problems_for(tmp_path, text))


def test_syntax_error_and_missing_file(tmp_path):
    probs = problems_for(tmp_path, "[api\n")
    assert len(probs) == 1 and "TOML syntax" in probs[0]
    probs = settings.check(tmp_path / "absent.toml")
    assert len(probs) == 1 and "cannot read" in probs[0]


def test_store_directory_must_be_creatable(tmp_path):
    (tmp_path / "afile").write_text("x")
    probs = problems_for(tmp_path, BASE + f"[store]\npath = '{tmp_path}/afile/sub/db'\n")
    assert any("store.path:" in p and "is not a directory" in p for p in probs), probs
    # a missing but creatable directory is fine, and check() does not create it
    assert problems_for(tmp_path, BASE + f"[store]\npath = '{tmp_path}/new/sub/db'\n") == []
    assert not (tmp_path / "new").exists()


# -- secrets -----------------------------------------------------------------------------------

def test_secret_files_relative_to_config_dir(tmp_path):
    (tmp_path / "tok").write_text("s3cret\n")
    (tmp_path / "pw").write_text("smpp-pw\n")
    text = BASE.replace('auth_token = "tok"', 'auth_token_file = "tok"').replace(
        'password = "pw"', 'password_file = "pw"')
    s = settings.load(write(tmp_path, text))
    assert s.account(AC).auth_token == "s3cret"
    assert s.carrier("a").smpp.password == "smpp-pw"
    assert "s3cret" not in repr(s) and "smpp-pw" not in repr(s)


def test_secret_files_from_credentials_directory(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "tok").write_text("from-systemd")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    text = BASE.replace('auth_token = "tok"', 'auth_token_file = "tok"')
    assert settings.load(write(tmp_path, text)).account(AC).auth_token == "from-systemd"
    abs_file = tmp_path / "abs"
    abs_file.write_text("absolute\n\n")
    text = BASE.replace('auth_token = "tok"', f'auth_token_file = "{abs_file}"')
    assert settings.load(write(tmp_path, text)).account(AC).auth_token == "absolute"


def test_secret_problems(tmp_path):
    (tmp_path / "empty").write_text("\n")
    text = BASE.replace('auth_token = "tok"', 'auth_token_file = "missing"').replace(
        'password = "pw"', 'password = "pw"\n  password_file = "empty"')
    probs = problems_for(tmp_path, text)
    assert any("accounts[0].auth_token_file: cannot read secret file" in p for p in probs), probs
    assert any("carriers[0].smpp.password: set either password or password_file" in p for p in probs)
    text = BASE.replace('password = "pw"', 'password_file = "empty"')
    assert any("carriers[0].smpp.password_file: secret file" in p and "is empty" in p
               for p in problems_for(tmp_path, text))


# -- the tree ----------------------------------------------------------------------------------

def test_settings_are_frozen_and_lookups_miss_cleanly(tmp_path):
    s = settings.load(write(tmp_path, BASE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.api.listen = "x"  # type: ignore[misc]
    assert s.account(AC2) is None and s.number("+1") is None and s.carrier("zz") is None
    assert s.messaging_service(MG) is None


def test_number_type_defaults_from_the_number(tmp_path):
    extra = "".join(f'\n[[numbers]]\nnumber = "{n}"\naccount = "{AC}"\n'
                    for n in ("+18885550100", "123456", "+442071838750"))
    s = settings.load(write(tmp_path, BASE + extra))
    assert [s.number(n).type for n in ("+18885550100", "123456", "+442071838750")] == [
        "toll_free", "short_code", "long_code"]


def test_memory_store_and_relative_store_without_state_directory(tmp_path, monkeypatch):
    s = settings.load(write(tmp_path, BASE + "[store]\npath = ':memory:'\n"))
    assert s.store.path == ":memory:"
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.chdir(tmp_path)
    s = settings.load(write(tmp_path, BASE + "[store]\npath = 'db/x.db'\n"))
    assert s.store.path == os.path.join(str(tmp_path), "db/x.db")


def test_health_section_mirrors_core_health_config():
    """runtime passes same-named [health] keys to HealthConfig: names, types and defaults
    must stay equal or a documented key would silently do nothing."""
    health = pytest.importorskip("gateway.core.health")
    core = {f.name: (f.type, f.default) for f in dataclasses.fields(health.HealthConfig)}
    ours = {f.name: (f.type, f.default) for f in dataclasses.fields(settings.HealthSettings)}
    assert ours == core
