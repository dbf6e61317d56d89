"""Alphanumeric sender IDs below the runtime: the ID rule (Twilio's AlphaSender), queue
keys, SMPP TON/NPI, the config section and its checks (``gateway check-config``), and an
alphanumeric sender draining at its class rate in the scheduler (injected time)."""

from __future__ import annotations

import textwrap

import pytest

from gateway import cli, settings
from gateway.core import numbers as nums
from gateway.core.scheduler import SenderScheduler

AC = "AC0123456789abcdef0123456789abcdef"
AC2 = "ACfedcba9876543210fedcba9876543210"


@pytest.mark.parametrize("sid, ok", [
    ("ACME", True), ("a", True), ("My Shop", True), ("A-B+C_D&E", True), ("1A", True),
    ("ABCDEFGHIJK", True), ("ABCDEFGHIJKL", False), ("TOOLONGSENDERID", False),
    ("12345", False), ("AC!ME", False), ("", False), ("ÄCME", False), ("AC.ME", False),
])
def test_sender_id_rule(sid, ok):
    assert nums.is_alpha_sender(sid) is ok


def test_queue_key_and_ton_npi():
    assert nums.sender_key(AC, "ACME") == f"{AC}|ACME" != nums.sender_key(AC2, "ACME")
    assert nums.sender_key(AC, "+15005550006") == "+15005550006"
    assert nums.sender_key(AC, "55501") == "55501"
    assert nums.source_ton_npi("ACME") == (5, 0)
    assert nums.source_ton_npi("+15005550006") == (1, 1)
    assert nums.source_ton_npi("55501") == (3, 1)


def write(tmp_path, body: str):
    path = tmp_path / "gw.toml"
    path.write_text(textwrap.dedent(f"""
    [[accounts]]
    sid = "{AC}"
    auth_token = "x"
    [[accounts]]
    sid = "{AC2}"
    auth_token = "y"
    """) + textwrap.dedent(body))
    return path


def test_config_defaults_and_valid_section(tmp_path):
    s = settings.load(write(tmp_path, f"""
    [[alpha_senders]]
    sender_id = "ACME"
    account = "{AC}"
    prefixes = ["+44", "+49"]
    [[alpha_senders]]
    sender_id = "ACME"
    account = "{AC2}"
    [[messaging_services]]
    sid = "MG0123456789abcdef0123456789abcdef"
    account = "{AC}"
    alpha_sender = "acme"
    """))
    assert s.rates.rate("alphanumeric") == 10.0
    assert s.rates.capacity("alphanumeric") == 10 * 3600 * 10
    assert [(a.sender_id, a.account, a.prefixes) for a in s.alpha_senders] == [
        ("ACME", AC, ("+44", "+49")), ("ACME", AC2, ())]
    assert s.messaging_services[0].alpha_sender == "acme"
    assert settings.load(write(tmp_path, "")).alpha_senders == ()   # optional section


def test_check_config_reports_bad_sender_ids(tmp_path, capsys):
    path = write(tmp_path, f"""
    [[alpha_senders]]
    sender_id = "AC!ME"
    account = "{AC}"
    [[alpha_senders]]
    sender_id = "Acme"
    account = "{AC}"
    prefixes = ["44"]
    [[alpha_senders]]
    sender_id = "ACME"
    account = "{AC}"
    [[alpha_senders]]
    sender_id = "ZETA"
    account = "AC00000000000000000000000000000000"
    [[messaging_services]]
    sid = "MG0123456789abcdef0123456789abcdef"
    account = "{AC2}"
    alpha_sender = "ACME"
    """)
    problems = settings.check(path)
    text = "\n".join(problems)
    assert "alpha_senders[0].sender_id: 'AC!ME' is not an alphanumeric sender ID" in text
    assert "alpha_senders[1].prefixes[0]" in text
    assert "alpha_senders[2].sender_id: 'ACME' is defined twice" in text
    assert "alpha_senders[3].account" in text
    assert "messaging_services[0].alpha_sender: 'ACME' is not in [[alpha_senders]]" in text
    assert len(problems) == 5
    assert cli.main(["check-config", "-c", str(path)]) == 2
    assert "'AC!ME' is not an alphanumeric sender ID" in capsys.readouterr().err


def test_alphanumeric_sender_drains_at_its_class_rate():
    rate = settings.RateSettings().rate("alphanumeric")   # 10 segments/s by default
    sched = SenderScheduler(0.0)
    key = nums.sender_key(AC, "ACME")
    sched.add_sender(key, rate, 1000, nums.ALPHANUMERIC)
    sched.add_sender("+15005550006", 1.0, 1000, nums.LONG_CODE)
    for i in range(40):
        assert sched.push(key, i, 1, 0.0)
        assert sched.push("+15005550006", i, 1, 0.0)
    sent: dict[str, int] = {}
    t = 0.0
    while t <= 2.0 + 1e-9:                  # 2 s in 10 ms steps
        for number, _item, _segs in sched.pop_ready(t):
            sent[number] = sent.get(number, 0) + 1
        t += 0.01
    # burst of one second (10) + 10/s for 2 s; the long code 1 + 1/s
    assert 28 <= sent[key] <= 31
    assert 2 <= sent["+15005550006"] <= 4
    assert sched.depth_by_class()[nums.ALPHANUMERIC] == 40 - sent[key]
