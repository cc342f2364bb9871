"""What every ``hl7gw`` command shares: the one-line failure, ``--config``, daemons.

Every ``Hl7gwError`` a command lets out is turned into ``error: <message>`` on stderr and
exit code 2 by :class:`Hl7gwGroup`, the class of the top-level group: commands do not
catch errors only to print them. Bad option values are click usage errors (also exit 2).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import click

from hl7gw.errors import Hl7gwError

CONFIG_HELP = "Gateway config file (YAML), e.g. samples/gateway.yaml."
CONFIG_ENV = "HL7GW_CONFIG"
F = TypeVar("F", bound=Callable[..., Any])


class CommandFailed(click.ClickException):
    """A refusal the user can act on: ``error: <message>`` on stderr, exit code 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the message after ``error:``; no usage text, no traceback."""
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def fail(reason: str | Exception) -> NoReturn:
    """Stop the command: ``error: <reason>`` on stderr, exit code 2."""
    raise CommandFailed(str(reason))


class Hl7gwGroup(click.Group):
    """The ``hl7gw`` group: any ``Hl7gwError`` from a command becomes :class:`CommandFailed`.

    Subcommands (and nested groups) run inside the top-level group's ``invoke``, so this
    one place covers them all.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an ``Hl7gwError`` is reported in one line, exit code 2."""
        try:
            return super().invoke(ctx)
        except Hl7gwError as exc:
            raise CommandFailed(str(exc)) from None


def config_option(*, required: bool = True, help: str = CONFIG_HELP,
                  default: Path | None = None) -> Callable[[F], F]:
    """``--config FILE`` (or ``$HL7GW_CONFIG``): declared once for every command."""
    extra: dict[str, Any] = {} if default is None else {"default": default,
                                                         "show_default": True}
    return click.option(
        "--config", "config", envvar=CONFIG_ENV, show_envvar=True,
        required=required and default is None,
        type=click.Path(exists=True, dir_okay=False, path_type=Path), help=help, **extra)


class TimeZoneType(click.ParamType[str, Any]):
    """An IANA time zone name; anything else is a usage error naming the value."""

    name = "ZONE"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        """The zone name, checked like the config's ``default_timezone``."""
        from hl7gw.fieldtypes import check_timezone  # pydantic: not for every command

        try:
            return check_timezone(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


TIME_ZONE = TimeZoneType()
# Option value types: a value out of range is a usage error naming the option, not an
# OverflowError from a socket call or SQLite later on.
PORT = click.IntRange(0, 65535)  # 0: any free port
PEER_PORT = click.IntRange(1, 65535)
COUNT = click.IntRange(min=1)
SECONDS = click.FloatRange(min=0, min_open=True)
ROW_ID = click.IntRange(1, 2**63 - 1)  # a SQLite rowid


def load_config(config: Path) -> Any:
    """The gateway settings from ``config`` (a ``ConfigError`` names file, line and field)."""
    from gateway.config import load_settings

    return load_settings(config)


def run_until_signal(command: str, start: Callable[[], Awaitable[Any]],
                     stop: Callable[[], Awaitable[Any]], *, drain_s: float) -> NoReturn:
    """Run ``start()``, wait for SIGINT/SIGTERM, then ``stop()``: the shape of every daemon.

    ``stop()`` runs also when ``start()`` fails half-way (a port in use after the spool
    and the mapping worker started), so nothing it started outlives the command. Signals,
    deadlines and exit codes are :mod:`hl7gw.shutdown`'s, as for every long-running command.
    """
    from hl7gw.shutdown import Shutdown, serve_until_stopped

    async def main(shutdown: Shutdown) -> None:
        try:
            await start()
            await shutdown.wait()
        finally:
            await stop()

    serve_until_stopped(command, main, drain_s=drain_s)
