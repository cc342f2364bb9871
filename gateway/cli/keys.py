"""``hl7gw keys``: make, rotate and list the spool's encryption keys (docs/encryption.md).

Nothing here prints key material, except the env provider's ``init`` and ``rotate``: that
provider keeps its keys in a variable only the operator can set, so the new value is
printed alone on stdout (to pipe into a secret store) and every word about it goes to
stderr. ``list`` reads the key file or variable without unwrapping anything (no KMS call);
``list --check`` loads the keyring as the gateway does and seals and opens a test record.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from gateway.cli.common import config_option, fail, load_config

if TYPE_CHECKING:
    from gateway.keys.settings import EncryptionSettings


@click.group()
def keys() -> None:
    """Encryption keys for the spool at rest (see docs/encryption.md).

    \b
      hl7gw keys init   --config site.yaml   the first key (refuses to replace one)
      hl7gw keys rotate --config site.yaml   a new current key; older ones stay readable
      hl7gw keys list   --config site.yaml   ids, dates, which is current (never the keys)
      hl7gw keys rewrap --config site.yaml   seal stored records under the current key
    """


def _settings(config: Path) -> EncryptionSettings:
    """The config's ``encryption:`` section; a config without one is refused."""
    settings: EncryptionSettings | None = load_config(config).encryption
    if settings is None:
        fail(f"{config} has no encryption: section, so the spool is stored in clear: add "
             "one (e.g. `encryption: {provider: file, key_file: /var/lib/hl7gw/keys.json}`, "
             "see docs/encryption.md), then run this again")
    return settings


def _next_steps(settings: EncryptionSettings, config: Path, key_id: str) -> str:
    if settings.provider == "env":
        restart = (f"put the new value in {settings.key_env} where the gateway's secrets "
                   "are kept and restart the gateway (a running process cannot see a new "
                   "environment)")
    else:
        restart = ("reload the gateway's keys: send it SIGHUP (kill -HUP <pid>) or "
                   "restart it")
    return (f"Next: {restart}; it then seals new records under {key_id} and still reads "
            f"the older ones. `hl7gw keys rewrap --config {config}` re-encrypts older "
            "records under the current key.")


@keys.command("init", short_help="Make the first key (never replaces existing keys).")
@config_option()
def keys_init(config: Path) -> None:
    """Make the first key for the configured provider (never replaces existing keys).

    file / aws-kms: creates the key file (mode 600) and prints its path and the key id.
    env: prints a value for the variable (a secret) on stdout, and nothing is written.
    """
    from gateway.keys.manage import init_keys

    settings = _settings(config)
    change = init_keys(settings)
    if change.env_value is not None:
        click.echo(change.env_value)
        click.echo(f"The line above is the value for {settings.key_env}, with key "
                   f"{change.key_id}. It is a secret: put it in your secret store, not in "
                   "the config file, a repository or shell history; it is kept nowhere "
                   "else, and losing it loses every record sealed with it.", err=True)
        return
    click.echo(f"created {change.path} (mode 600, provider {settings.provider}) with key "
               f"{change.key_id}, current")
    click.echo(f"Back up {change.path} now, apart from the spool's backups: without it the "
               "encrypted spool cannot be read, by anyone.")


@keys.command("rotate", short_help="Add a new current key; older keys stay readable.")
@config_option()
def keys_rotate(config: Path) -> None:
    """Add a new key and make it current; older keys stay, so older records stay readable.

    env: reads the current value of the variable from this environment and prints the new
    value (a secret) on stdout.
    """
    from gateway.keys.manage import rotate_keys

    settings = _settings(config)
    change = rotate_keys(settings)
    if change.env_value is not None:
        click.echo(change.env_value)
        click.echo(f"The line above is the new value for {settings.key_env}: key "
                   f"{change.key_id} is current (was {change.previous_key_id}), the "
                   f"{change.key_count - 1} older key(s) stay readable. It is a secret: put "
                   "it in your secret store, not in a file or shell history.", err=True)
        click.echo(_next_steps(settings, config, change.key_id), err=True)
        return
    click.echo(f"added key {change.key_id} to {change.path}: current now (was "
               f"{change.previous_key_id}); {change.key_count} keys in the ring")
    click.echo(f"Back up {change.path} again now: records sealed from now on need "
               f"{change.key_id}.")
    click.echo(_next_steps(settings, config, change.key_id))


@keys.command("list", short_help="Key ids, dates, which is current; never the keys.")
@config_option()
@click.option("--check", is_flag=True,
              help="Also load the keyring as the gateway does (aws-kms: unwrap every key "
                   "with KMS) and seal and open a test record.")
def keys_list(config: Path, check: bool) -> None:
    """The keys' ids, when each was made and which one is current; never the keys."""
    from gateway.keys.keyfile import format_time
    from gateway.keys.manage import describe_keys

    settings = _settings(config)
    where, infos = describe_keys(settings)
    click.echo(f"provider {settings.provider}, {where}")
    rows = [("ID", "CREATED", "CURRENT", "KMS KEY")]
    rows += [(k.id, format_time(k.created) if k.created else "-",
              "current" if k.current else "", k.kms_key_id or "") for k in infos]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    columns = 4 if settings.provider == "aws-kms" else 3
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row[:columns], widths, strict=False))
                   .rstrip())
    if check:
        _check(settings)


def _check(settings: EncryptionSettings) -> None:
    from gateway.keys.providers import load_keyring

    ring = load_keyring(settings)  # every failure is an EncryptionError saying what to fix
    ring.decrypt(ring.encrypt(b"hl7gw keys list --check", b"check"), b"check")
    click.echo(f"check: {len(ring.key_ids)} key(s) load as the gateway loads them; "
               f"{ring.current_key_id} seals and opens a test record")


@keys.command("rewrap", short_help="Seal stored records under the current key (migrates a "
              "clear spool too).")
@config_option()
def keys_rewrap(config: Path) -> None:
    """Seal every record in the spool under the current key, in place.

    Records under an older key (after `keys rotate`) and records stored in clear (a spool
    from before `encryption:` was added) are sealed again; the gateway may keep running
    (it waits for one short chunk at a time). Freed space is zeroed and the WAL truncated,
    so the old values do not stay in the file. Journal segments written in clear are
    overwritten by the gateway itself when it starts with the key.
    """
    import asyncio
    import sys

    from gateway.errors import EncryptionError, SpoolError
    from gateway.keys.providers import load_keyring
    from gateway.spool import Spool

    gateway = load_config(config)
    settings = _settings(config)
    try:
        keyring = load_keyring(settings)
    except EncryptionError as exc:
        fail(str(exc))
    spool = Spool(gateway.spool.path, keyring=keyring)

    async def run() -> str:
        await spool.start()
        try:
            total = await spool.rewrap_size()
            with click.progressbar(length=total, label="rewrap", file=sys.stderr) as bar:
                done = await spool.rewrap(lambda rows: bar.update(rows))
        finally:
            await spool.stop()
        tables = ", ".join(f"{n} in {t}" for t, n in done.sealed.items())
        return (f"sealed {done.total} value(s) under {keyring.current_key_id} ({tables}); "
                f"{done.current} were current already")

    try:
        click.echo(asyncio.run(run()))
    except (SpoolError, EncryptionError) as exc:
        fail(str(exc))
