"""Admin carrier view: ``traffic_share`` over the last ``SHARE_WINDOW_S`` seconds (one-second
buckets), ``submitted`` since start; the clock is trio's MockClock."""

from __future__ import annotations

from gateway import settings as settings_mod
from gateway.runtime.carriers import SHARE_WINDOW_S, Carriers, RecentCounts
from tests.e2e.harness import config_text


def test_recent_counts_forget_seconds_older_than_the_window():
    rc = RecentCounts(["a"], window=10)
    for t in (0.0, 0.5, 0.99, 3.2):
        rc.add("a", t)
    assert rc.count("a", 3.5) == 4
    assert rc.count("a", 9.99) == 4          # second 0 is still inside (9.99 - 10 < 0)
    assert rc.count("a", 10.0) == 1          # second 0 left; second 3 remains
    rc.add("a", 10.2, n=5)                   # bucket of second 0 reused for second 10
    assert rc.count("a", 10.5) == 6
    assert rc.count("a", 12.99) == 6
    assert rc.count("a", 13.0) == 5          # second 3 left (seconds 4..13 remain)
    assert rc.count("a", 25.0) == 0          # everything old: nothing counted


def test_recent_counts_survive_a_gap_longer_than_the_window():
    rc = RecentCounts(["a"], window=5)
    rc.add("a", 1.0)
    rc.add("a", 101.0)                       # same bucket index, 100 s later
    assert rc.count("a", 101.5) == 1


def _carriers(tmp_path) -> Carriers:
    path = tmp_path / "gw.toml"
    path.write_text(config_text(tmp_path, [("a", 1), ("b", 2)], 1))
    return Carriers(settings_mod.load(path))


async def test_admin_traffic_share_is_over_the_recent_window(tmp_path, mock_clock):
    c = _carriers(tmp_path)
    rows = {r["name"]: r for r in c.admin()}
    assert rows["a"]["traffic_share"] == rows["b"]["traffic_share"] == 0.0
    for _ in range(90):                      # an old burst on a only
        c.on_submit_resp("a", 0.01, 0)
    c.on_submit_resp("a", 0.01, 0x58)        # refused: not a submit that carried traffic
    mock_clock.jump(SHARE_WINDOW_S / 2)
    for _ in range(10):
        c.on_submit_resp("b", 0.01, 0)
    rows = {r["name"]: r for r in c.admin()}
    assert rows["a"]["traffic_share"] == 0.9 and rows["b"]["traffic_share"] == 0.1
    assert rows["a"]["traffic_share_window_s"] == SHARE_WINDOW_S
    mock_clock.jump(SHARE_WINDOW_S / 2 + 1)  # a's burst left the window, b's did not
    for _ in range(30):
        c.on_submit_resp("a", 0.01, 0)
    rows = {r["name"]: r for r in c.admin()}
    assert rows["a"]["submitted"] == 120 and rows["b"]["submitted"] == 10   # since start
    assert rows["a"]["submitted_recent"] == 30 and rows["b"]["submitted_recent"] == 10
    assert rows["a"]["traffic_share"] == 0.75 and rows["b"]["traffic_share"] == 0.25
    mock_clock.jump(10 * SHARE_WINDOW_S)     # quiet: no recent traffic, no share
    rows = {r["name"]: r for r in c.admin()}
    assert rows["a"]["traffic_share"] == rows["b"]["traffic_share"] == 0.0
    assert rows["a"]["submitted"] == 120
