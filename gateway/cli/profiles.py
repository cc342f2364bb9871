"""``hl7gw profiles``: check a folder of sender profiles, or try a changed one on recent
messages, before the gateway loads it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gateway.cli.common import CONFIG_HELP, config_option, fail, load_config
from hl7gw.errors import Hl7gwError, MessageError


@click.group()
def profiles() -> None:
    """Per-sender mapping profiles: check or try them before the gateway loads them.

    \b
      hl7gw profiles check samples/profiles
      hl7gw profiles check samples/profiles --message samples/messages/oru_r01.hl7
      hl7gw profiles try sunlab.yaml --config samples/gateway.yaml --since 24h
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


@profiles.command("try")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option(help=CONFIG_HELP + " Its profiles.dir is the live set; its spool.path is "
                                  "read (never written).")
@click.option("--since", metavar="WHEN",
              help="Only messages received since: 30m, 24h, 7d back, or ISO 8601.")
@click.option("--last", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="Try at most the newest N messages.")
@click.option("--sender", metavar="APP^FAC",
              help="MSH-3^MSH-4 (or APP) to try; default: whom the profile matches.")
@click.option("--examples", type=click.IntRange(0, 100), default=10, show_default=True,
              help="How many before/after examples to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def profiles_try(file: Path, config: Path, since: str | None, last: int, sender: str | None,
                 examples: int, as_json: bool) -> None:
    """Map recent spooled messages with FILE in place of the live profile; show changes.

    FILE replaces the loaded profile with the same name (or is added). Each message of
    its sender (the profile's match, or --sender) is mapped with the live profiles and
    with FILE, as the gateway maps it, and the Bundles, issues and unmapped fields are
    compared. Nothing is written: not the spool (opened read-only), not Kafka, not the
    profiles folder. Examples show message values: treat the output as PHI.

    Exits 0 when the trial ran (whatever it found), 2 when FILE, the config, the live
    profiles or the spool cannot be read.
    """
    import asyncio
    import json

    from gateway.trial import ReadOnlySpool, Window, make_candidate, parse_since, run_trial
    from mappers.errors import ProfileError
    from mappers.profiles import EMPTY_PROFILES, ProfileSet

    settings = load_config(config)
    directory = settings.profiles.dir
    try:
        current = ProfileSet.load(directory) if directory is not None else EMPTY_PROFILES
    except ProfileError as exc:
        fail(f"the live profiles in {directory} do not load, so there is nothing to compare "
             f"with; fix them first:\n{exc}")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{file}: cannot read: {exc}")
    try:
        candidate = make_candidate(text, current, label=str(file),
                                   origin=str(directory) if directory else "<profiles>")
    except ProfileError as exc:
        for line in str(exc).splitlines():
            click.echo(line, err=True)
        fail(f"{file} does not load as a profile; nothing was tried")
    window = Window(since=parse_since(since) if since else None, last=last, sender=sender)
    from gateway.errors import EncryptionError
    from gateway.keys.providers import configured_keyring

    try:  # bodies are opened with the spool's keys, as hl7gw replay opens them
        keyring = configured_keyring(settings.encryption)
    except EncryptionError as exc:
        fail(str(exc))
    source = ReadOnlySpool(settings.spool.path, keyring)
    try:
        with click.progressbar(length=1, label="choosing messages", file=sys.stderr,
                               show_pos=True) as bar:
            def progress(phase: str, done: int, total: int) -> None:
                if phase == "mapping":
                    bar.label, bar.length = "mapping both ways", max(total, 1)
                    bar.update(done - bar.pos)

            report = asyncio.run(run_trial(candidate, source, window, examples=examples,
                                           progress=progress))
    finally:
        source.close()
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        _print_report(report.as_json(), directory)
    sys.exit(0)


def _print_report(r: dict[str, Any], directory: Path | None) -> None:
    """The trial's report as a readable summary."""
    what = f"replaces {r['replaces']}" if r["replaces"] else f"new, as {r['target']}"
    click.echo(f"profile {r['profile']} ({what}) on {r['senders']}, newest {r['last']}"
               + (" since the given time" if r["since"] else ""))
    click.echo(f"tried {r['tried']} message(s) in {r['seconds']:.1f} s: {r['changed']} "
               f"changed, {r['unchanged']} unchanged, {r['now_failing']} now failing, "
               f"{r['now_mapping']} now mapping, {r['still_failing']} failing either way")
    if not r["tried"]:
        click.echo(f"no message from {r['senders']} in the window: widen it (--since, "
                   "--last) or name the sender (--sender APP^FAC)")
    if r["elements"]:
        click.echo("changed elements (messages, changes):")
        width = max(len(e["element"]) for e in r["elements"])
        for e in r["elements"]:
            click.echo(f"  {e['element']:<{width}}  {e['messages']:>6}  {e['changes']:>6}")
    for key, label in (("new", "new issues"), ("gone", "issues gone")):
        for i in r["issues"][key]:
            click.echo(f"{label}: {i['code']} at {i['location'] or 'message'}: "
                       f"{i['messages']} message(s)")
    for key, label in (("new", "newly unmapped"), ("gone", "now mapped")):
        for f in r["unmapped"][key]:
            click.echo(f"{label}: {f['field']}: {f['messages']} message(s)")
    for f in r["failures"]:
        click.echo(f"now failing: row {f['id']} ({f['control_id']}): {f['error']}")
    if r["examples"]:
        click.echo("examples (message values):")
    for x in r["examples"]:
        click.echo(f"  row {x['id']} ({x['control_id']}) {x['element']} {x['kind']}: "
                   f"{x['before']} -> {x['after']}")
    where = f"{directory}/{r['target']}" if directory else r["target"]
    click.echo(f"nothing was written; to apply, put the file at {where} "
               "(the gateway reloads it) or use Apply on the console's Try page")
