"""The one place the CLI turns an Hl7gwError into one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.cli.common import TIME_ZONE, Hl7gwGroup, config_option, fail
from gateway.errors import ConfigError
from hl7gw.errors import Hl7gwError


@click.group(cls=Hl7gwGroup)
def app() -> None:
    """A stand-in for ``hl7gw``."""


@app.group()
def nested() -> None:
    """A group inside, as ``hl7gw dev``."""


@nested.command()
def deep() -> None:
    raise ConfigError("gw.yaml:3: kafka: Field required")


@app.command()
def refuse() -> None:
    fail("no filter given")


@app.command()
def bug() -> None:
    raise RuntimeError("a bug shows its traceback")


@app.command()
@click.option("--tz", type=TIME_ZONE)
@config_option(required=False)
def opts(tz: str | None, config: object) -> None:
    click.echo(f"{tz} {config}")


def test_an_error_from_a_nested_command_is_one_line_exit_2() -> None:
    result = CliRunner().invoke(app, ["nested", "deep"])
    assert result.exit_code == 2
    assert result.stderr == "error: gw.yaml:3: kafka: Field required\n"
    assert result.stdout == ""


def test_fail_is_the_same_line() -> None:
    result = CliRunner().invoke(app, ["refuse"])
    assert (result.exit_code, result.stderr) == (2, "error: no filter given\n")


def test_other_exceptions_are_not_hidden() -> None:
    result = CliRunner().invoke(app, ["bug"])
    assert isinstance(result.exception, RuntimeError)


def test_time_zone_option_checks_the_name() -> None:
    good = CliRunner().invoke(app, ["opts", "--tz", "Europe/Paris"])
    assert good.stdout == "Europe/Paris None\n"
    bad = CliRunner().invoke(app, ["opts", "--tz", "Mars/Olympus"])
    assert bad.exit_code == 2
    assert "Invalid value for '--tz': unknown time zone 'Mars/Olympus'" in bad.stderr


def test_config_comes_from_hl7gw_config(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("kafka: {bootstrap_servers: x}\n")
    result = CliRunner().invoke(app, ["opts"], env={"HL7GW_CONFIG": str(cfg)})
    assert result.stdout == f"None {cfg}\n"


def test_hl7gw_is_such_a_group() -> None:
    assert isinstance(main, Hl7gwGroup)
    assert issubclass(ConfigError, Hl7gwError)


@pytest.mark.parametrize(("args", "option"), [
    (["send", "--port", "70000", "x.hl7"], "'--port': 70000 is not in the range 1<=x<=65535"),
    (["send", "--timeout", "0", "x.hl7"], "'--timeout': 0.0 is not in the range x>0"),
    (["serve", "--config", "gw.yaml", "--mllp-port", "70000"], "'--mllp-port': 70000"),
    (["bench", "map", "-n", "2"], "'-n': 2 is not in the range x>=5"),
    (["replay", "--config", "gw.yaml", "--id", "99999999999999999999"], "'--id': "),
])
def test_an_option_out_of_range_is_a_usage_error(tmp_path: Path, args: list[str],
                                                   option: str) -> None:
    # were OverflowError / ValueError tracebacks from a socket call, SQLite or the bench
    (tmp_path / "x.hl7").write_text("MSH|^~\\&|\r")
    (tmp_path / "gw.yaml").write_text("kafka: {bootstrap_servers: x}\n")
    paths = {"x.hl7": str(tmp_path / "x.hl7"), "gw.yaml": str(tmp_path / "gw.yaml")}
    result = CliRunner().invoke(main, [paths.get(a, a) for a in args])
    assert result.exit_code == 2
    assert f"Invalid value for {option}" in result.stderr
