"""The ``gateway`` command line surface (CONTRACT §2): subcommands, ``--help`` on each,
``--version``, exit codes of argparse errors and of ``check-config``. In-process through
``gateway.cli.main`` (fast); the subprocess forms are in tests/e2e/test_process.py."""

from __future__ import annotations

import pytest

from gateway import __version__, cli


def run(argv, capsys):
    with pytest.raises(SystemExit) as ei:
        cli.main(argv)
    out = capsys.readouterr()
    return ei.value.code, out.out, out.err


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["check-config", "--help"],
                                  ["smsc-sim", "--help"]])
def test_help_exits_zero(argv, capsys):
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert out.startswith("usage: gateway")


def test_top_level_help_lists_every_subcommand(capsys):
    _, out, _ = run(["--help"], capsys)
    for sub in ("run", "check-config", "smsc-sim"):
        assert sub in out


@pytest.mark.parametrize("argv, options", [
    (["run", "--help"], ["-c", "--config", "--log-format", "--log-level"]),
    (["check-config", "--help"], ["-c", "--config"]),
    (["smsc-sim", "--help"], ["--listen", "--control", "--system-id", "--password",
                              "--dlr-delay-ms", "--dlr-states", "--throttle", "--withhold",
                              "--drop-after"]),
])
def test_subcommand_options(argv, options, capsys):
    _, out, _ = run(argv, capsys)
    for opt in options:
        assert opt in out, opt


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"gateway {__version__}"


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["run"], ["check-config"],
                                  ["run", "-c", "x.toml", "--log-format", "xml"],
                                  ["smsc-sim", "--listen", "no-port"],
                                  ["smsc-sim", "--dlr-states", "DELIVRD=abc"],
                                  ["smsc-sim", "--dlr-states", "BOGUS=1"]])
def test_usage_errors_exit_2(argv, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2
    assert "usage:" in err


def test_check_config_ok_returns_zero(capsys):
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "config" / "gateway.dev.toml"
    assert cli.main(["check-config", "-c", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: ok"


def test_check_config_problems_return_2_one_line_each(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[api]\nlisten = "127.0.0.1:0"\nbogus = 1\n')
    assert cli.main(["check-config", "-c", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and any("bogus" in line for line in err)
    assert all(str(bad) in line for line in err), err


def test_run_with_bad_config_exits_2_before_starting(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[nope]\n")
    assert cli.main(["run", "-c", str(bad)]) == 2
    assert "nope" in capsys.readouterr().err


def test_missing_config_file_is_a_problem_line(tmp_path, capsys):
    missing = tmp_path / "absent.toml"
    assert cli.main(["check-config", "-c", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0]
