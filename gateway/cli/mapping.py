"""``hl7gw map``: each message of a file to its FHIR Bundle, with the profile the gateway
would use, split as the gateway splits what it receives (batches included)."""

from __future__ import annotations

import re
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


def _load_profiles(name: str | None, directory: Path | None) -> Any:
    """The profiles folder's set, loaded once for every message of the file (or None)."""
    if directory is None:
        if name is not None:
            fail("--profile needs the profiles folder: --profiles DIR, or "
                 "--config CFG with profiles.dir set")
        return None
    from mappers.profiles import ProfileSet

    profiles = ProfileSet.load(directory)
    if name is not None:
        profiles.get(name)  # an unknown name stops the command before any message
    return profiles


def _choose_profile(raw: bytes, name: str | None, profiles: Any) -> Any:
    """The profile ``--profile`` names, else the one the gateway would pick from MSH.

    Without a profiles folder there is none. An automatic choice is said on stderr, so
    what the Bundle was made with is never a guess.
    """
    if profiles is None:
        return None
    from gateway.prepare import choose_profile
    from mappers.hl7v2.envelope import sniff

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


def split_messages(file: Path) -> tuple[list[bytes], bool]:
    """The file's messages, split as the gateway splits what it receives; and whether the
    file holds a batch or several messages.

    ``gateway.prepare.split_file`` cuts a file at each MSH (a batch stays whole, as
    ``hl7gw send`` sends it in one frame); each FHS/BHS batch is then split by
    ``gateway.batch.split_batch``, the intake's splitter, message bytes kept as received.
    A batch whose BTS-1 count disagrees with its messages is refused whole, as over MLLP.
    """
    from gateway.batch import split_batch
    from gateway.prepare import describe, split_file

    out: list[bytes] = []
    batch = False
    for item in split_file(file.read_bytes()):
        if not item.lstrip().startswith((b"FHS", b"BHS")):
            out.append(item)
            continue
        batch = True
        try:
            split = split_batch(item.decode("latin-1"))  # byte-transparent, as intake does
        except MessageError as exc:
            fail(f"{file}: batch refused: {describe(exc)}")
        if split.error is not None:
            where = f" at {split.error.location}" if split.error.location else ""
            fail(f"{file}: batch refused whole{where}, as the gateway refuses it: "
                 f"{split.error.text}")
        out += [text.encode("latin-1") for text in split.messages]
    if not out:
        fail(f"{file}: no HL7 message found")
    return out, batch or len(out) > 1


def _file_name(index: int, width: int, raw: bytes, suffix: str) -> str:
    """``003-MSG00003.json``: the message's place in the file, then its MSH-10 (characters
    other than letters, digits, ``.``, ``_`` and ``-`` become ``_``); the place alone when
    MSH-10 is empty. The place keeps names unique when control ids repeat."""
    from mappers.hl7v2.envelope import sniff

    control_id = _UNSAFE.sub("_", sniff(raw).envelope.control_id)[:64].strip("._")
    return f"{index:0{width}d}{'-' + control_id if control_id else ''}{suffix}"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@click.command("map")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--timezone", "tz", default=None, type=TIME_ZONE,
              help="Time zone for timestamps that carry none.  [default: the profile's, "
                   "else the config's default_timezone, else UTC]")
@click.option("--no-validate", is_flag=True,
              help="Skip the fhir.resources model check (faster; output is valid by construction).")
@click.option("--explain", is_flag=True,
              help="Instead of the Bundle, show where each element came from (PID-5.1 ...), "
                   "the IG row each rule implements, the code translations applied, the "
                   "issues and the unmapped fields.")
@click.option("--profile", "profile_name", metavar="NAME",
              help="Map with this sender profile (from --profiles or the config's "
                   "profiles.dir). Without it, the profile is chosen from MSH like the "
                   "gateway does, and named on stderr.")
@click.option("--profiles", "profiles_dir",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help=PROFILES_HELP)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write one file per message into this folder (created if needed), named "
                   "by the message's place in the file and its control id: "
                   "001-MSG00001.json (001.json when MSH-10 is empty; .txt with --explain). "
                   "The paths written are printed, one per line.")
@config_option(required=False,
               help="Gateway config: take profiles.dir and default_timezone from it.")
def map_(file: Path, tz: str | None, no_validate: bool, explain: bool,
         profile_name: str | None, profiles_dir: Path | None, out_dir: Path | None,
         config: Path | None) -> None:
    """Print the FHIR R4 transaction Bundle for each HL7 v2 message of FILE.

    FILE holds one message, several (each starting at MSH), or a batch (FHS/BHS ...
    BTS/FTS), split as the gateway splits them over MLLP. One message prints its Bundle;
    several print one Bundle per line (JSON Lines), or one file each with --out.

    With a sender profile, its charset, time zone, codes, identifier systems and extra
    fields apply, as in the gateway. A message that is refused gets one line on stderr,
    "error: FILE: message N (MSH-10 ID): reason", and the others are still mapped; the
    command then exits 2.
    """
    messages, several = split_messages(file)
    settings = load_config(config) if config is not None else None
    profiles = _load_profiles(profile_name, _profiles_dir(profiles_dir, settings))
    zone = settings.default_timezone if settings is not None else "UTC"
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    width = max(3, len(str(len(messages))))
    refused = 0
    for n, raw in enumerate(messages, 1):
        label = f"{file}: message {n} ({_control_id(raw)})" if several else str(file)
        try:
            text = _map_one(raw, profile_name, profiles, zone, tz, explain=explain,
                            validate=not no_validate, compact=several and out_dir is None,
                            label=label if several else "")
        except (MessageError, Hl7gwError) as exc:
            from gateway.prepare import describe

            reason = describe(exc) if isinstance(exc, MessageError) else str(exc)
            if not several:
                fail(f"{label}: {reason}")
            click.echo(f"error: {label}: {reason}", err=True)
            refused += 1
            continue
        if out_dir is None:
            sys.stdout.write(text)
            continue
        target = out_dir / _file_name(n, width, raw, ".txt" if explain else ".json")
        target.write_text(text, encoding="utf-8")
        click.echo(str(target))
    if refused:
        fail(f"{file}: {refused} of {len(messages)} messages refused")


def _control_id(raw: bytes) -> str:
    from mappers.hl7v2.envelope import sniff

    control_id = sniff(raw).envelope.control_id
    return f"MSH-10 {control_id[:40]}" if control_id else "no MSH-10"


def _map_one(raw: bytes, profile_name: str | None, profiles: Any, zone: str,
             tz: str | None, *, explain: bool, validate: bool, compact: bool,
             label: str) -> str:
    """One message's Bundle as JSON (indented, or one line when ``compact``), or its
    explanation; its issues as warnings on stderr. Raises what the mapper refuses."""
    import orjson

    from gateway.prepare import convert, prepare, with_timezone
    from gateway.prepare import explain as explain_prepared

    profile = _choose_profile(raw, profile_name, profiles)
    # gateway.prepare, as the gateway: charset from a BOM, the profile, MSH-18, else
    # UTF-8; zone: --timezone, else the profile's, else the config's, else UTC
    prepared = prepare(raw, profile=profile, default_timezone=zone)
    if tz is not None:
        prepared = with_timezone(prepared, tz)
    if explain:
        head = f"# {label}\n" if label else ""
        return head + explain_prepared(prepared).rstrip("\n") + "\n"
    result = convert(prepared, validate=validate)
    for issue in result.issues:
        click.echo(f"warning: {label + ': ' if label else ''}{issue}", err=True)
    option = 0 if compact else orjson.OPT_INDENT_2
    return orjson.dumps(result.bundle, option=option).decode() + "\n"
