"""``hl7gw map``: one message to its FHIR Bundle, with the profile the gateway would use."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gateway.cli.common import (
    TIME_ZONE,
    config_option,
    fail,
    load_config,
)
from hl7gw.errors import Hl7gwError, MessageError

PROFILES_HELP = "Folder of sender profiles (*.yaml), e.g. samples/profiles."


def _profiles_dir(profiles: Path | None, settings: Any) -> Path | None:
    """--profiles, else the config's profiles.dir, else None."""
    if profiles is not None:
        return profiles
    return settings.profiles.dir if settings is not None else None


def _choose_profile(raw: bytes, name: str | None, directory: Path | None) -> Any:
    """The profile ``--profile`` names, else the one the gateway would pick from MSH.

    Without a profiles folder there is none. An automatic choice is said on stderr, so
    what the Bundle was made with is never a guess.
    """
    if directory is None:
        if name is not None:
            fail("--profile needs the profiles folder: --profiles DIR, or "
                 "--config CFG with profiles.dir set")
        return None
    from gateway.prepare import choose_profile
    from mappers.hl7v2.envelope import sniff
    from mappers.profiles import ProfileSet

    profiles = ProfileSet.load(directory)
    if name is not None:
        return profiles.get(name)
    envelope = sniff(raw).envelope
    chosen = choose_profile(profiles, envelope)
    if chosen is None:
        app, fac, version = envelope.sender_key
        click.echo(f"profile: none matches MSH-3 {app or '(empty)'}, MSH-4 "
                   f"{fac or '(empty)'}, MSH-12 {version or '(empty)'}", err=True)
    else:
        click.echo(f"profile: {chosen.name} ({chosen.path})", err=True)
    return chosen


@click.command("map")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--timezone", "tz", default=None, type=TIME_ZONE,
              help="Time zone for timestamps that carry none.  [default: the profile's, "
                   "else the config's default_timezone, else UTC]")
@click.option("--no-validate", is_flag=True,
              help="Skip the fhir.resources model check (faster; output is valid by construction).")
@click.option("--explain", is_flag=True,
              help="Instead of the Bundle, show where each element came from (PID-5.1 ...), "
                   "the code translations applied, the issues and the unmapped fields.")
@click.option("--profile", "profile_name", metavar="NAME",
              help="Map with this sender profile (from --profiles or the config's "
                   "profiles.dir). Without it, the profile is chosen from MSH like the "
                   "gateway does, and named on stderr.")
@click.option("--profiles", "profiles_dir",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help=PROFILES_HELP)
@config_option(required=False,
               help="Gateway config: take profiles.dir and default_timezone from it.")
def map_(file: Path, tz: str | None, no_validate: bool, explain: bool,
         profile_name: str | None, profiles_dir: Path | None, config: Path | None) -> None:
    """Print the FHIR R4 transaction Bundle for one HL7 v2 message.

    With a sender profile, its charset, time zone, codes, identifier systems and extra
    fields apply, as in the gateway. Exits 2 with a one-line reason on stderr when the
    message is refused.
    """
    import orjson

    from gateway.prepare import convert, describe, prepare, split_file, with_timezone
    from gateway.prepare import explain as explain_prepared

    messages = split_file(file.read_bytes())
    if len(messages) != 1:
        fail(f"{file}: expected one message, found {len(messages)}")
    settings = load_config(config) if config is not None else None
    directory = _profiles_dir(profiles_dir, settings)
    profile = _choose_profile(messages[0], profile_name, directory)
    try:
        # gateway.prepare, as the gateway: charset from a BOM, the profile, MSH-18, else
        # UTF-8; zone: --timezone, else the profile's, else the config's, else UTC
        prepared = prepare(messages[0], profile=profile, default_timezone=(
            settings.default_timezone if settings is not None else "UTC"))
        if tz is not None:
            prepared = with_timezone(prepared, tz)
        if explain:
            sys.stdout.write(explain_prepared(prepared).rstrip("\n") + "\n")
            return
        result = convert(prepared, validate=not no_validate)
    except MessageError as exc:
        fail(f"{file}: {describe(exc)}")
    except Hl7gwError as exc:
        fail(f"{file}: {exc}")
    sys.stdout.write(orjson.dumps(result.bundle, option=orjson.OPT_INDENT_2).decode() + "\n")
    for issue in result.issues:
        click.echo(f"warning: {issue}", err=True)
