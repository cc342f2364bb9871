"""``hl7gw profiles``: check a folder of sender profiles before the gateway loads it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from hl7gw.errors import Hl7gwError, MessageError


@click.group()
def profiles() -> None:
    """Per-sender mapping profiles: check a folder before the gateway loads it.

    \b
      hl7gw profiles check samples/profiles
      hl7gw profiles check samples/profiles --message samples/messages/oru_r01.hl7
    """


@profiles.command("check")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--message", "messages", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A message file to select a profile for and map with it (repeatable).")
def profiles_check(directory: Path, messages: tuple[Path, ...]) -> None:
    """Load and lint every profile in DIRECTORY, as the gateway would.

    Prints each profile (name, match, file), or each mistake as
    ``file:line: field: what is wrong``. With --message, prints the profile each message
    selects (most specific match on MSH-3, MSH-4, MSH-12) and maps it with that profile.
    Exits 2 when a profile is wrong or the mapper refuses a message.
    """
    from mappers.profiles import ProfileSet

    try:
        loaded = ProfileSet.load(directory)
    except Hl7gwError as exc:
        lines = str(exc).splitlines()
        for line in lines:
            click.echo(line)
        click.echo(f"error: {len(lines)} problem(s) in {directory}; the gateway would keep "
                   "its last good profiles (or not start)", err=True)
        sys.exit(2)
    by_name = {p.name: p for p in loaded.profiles}
    for name in loaded.names():
        p = by_name[name]
        extras = "".join(f"  {k}={v}" for k, v in (("timezone", p.timezone),
                                                   ("charset", p.charset)) if v)
        click.echo(f"{p.name}  {p.describe_match()}  {p.path}{extras}")
    if not loaded.profiles:
        click.echo(f"no profiles in {directory} (*.yaml)")
    refused = sum(_check_message_file(path, loaded) for path in messages)
    sys.exit(2 if refused else 0)


def _check_message_file(path: Path, loaded: Any) -> int:
    """Select and map each message of ``path``; print one line each; return refusals."""
    from gateway.prepare import choose_profile, convert, describe, prepare, split_file
    from mappers.hl7v2.envelope import sniff

    refused = 0
    for n, raw in enumerate(split_file(path.read_bytes()), 1):
        label = f"{path}#{n}"
        envelope = sniff(raw).envelope
        profile = choose_profile(loaded, envelope)
        if profile is None:
            app, fac, version = envelope.sender_key
            chosen = f"no profile (MSH-3 {app or '-'}, MSH-4 {fac or '-'}, MSH-12 {version or '-'})"
        else:
            chosen = f"profile {profile.name}"
        try:
            # gateway.prepare, as the gateway decodes and maps (charset, zone, profile)
            result = convert(prepare(raw, profile=profile), validate=True)
        except Hl7gwError as exc:
            text = describe(exc) if isinstance(exc, MessageError) else str(exc)
            click.echo(f"{label}: {chosen}: refused: {text}")
            refused += 1
            continue
        click.echo(f"{label}: {chosen}: {result.message_type} -> "
                   f"{len(result.bundle['entry'])} resources, {len(result.issues)} issue(s), "
                   f"{len(result.unmapped)} unmapped field(s)")
    return refused
