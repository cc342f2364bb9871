"""``hl7gw replay``: map and publish spooled messages again."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.cli.common import (
    CONFIG_HELP,
    ROW_ID,
    SECONDS,
    config_option,
    fail,
    load_config,
)

if TYPE_CHECKING:
    from gateway.keys.keyring import Keyring

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """ISO 8601 (naive = local time) or a duration back from now (``90s``, ``2h``, ``3d``)."""
    import re
    import time
    from datetime import datetime

    if value is None:
        return None
    text = value.strip()
    relative = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text)
    if relative:
        return time.time() - float(relative[1]) * _UNITS[relative[2]]
    try:
        # a naive time is local time: datetime.timestamp() reads it so
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither ISO 8601 (2024-05-01T08:00, naive = local time) nor a "
            "duration back from now (30m, 2h, 3d)", ctx, param) from None


@click.command()
@config_option(help=CONFIG_HELP + " Its spool.path is opened.")
@click.option("--id", "ids", type=ROW_ID, multiple=True, help="Spool row id (repeatable).")
@click.option("--since", metavar="WHEN", callback=_when,
              help="Received at or after: ISO 8601 (naive = local) or 30m, 2h, 3d ago.")
@click.option("--until", metavar="WHEN", callback=_when,
              help="Received before: ISO 8601 (naive = local) or 30m, 2h, 3d ago.")
@click.option("--sender", metavar="APP|FAC", help="MSH-3|MSH-4, or APP for every facility.")
@click.option("--type", "message_type", metavar="TYPE", help="ADT^A01, or ADT^* for a prefix.")
@click.option("--status", type=click.Choice(["failed", "published"]),
              help="Only rows in this state.")
@click.option("--all", "everything", is_flag=True, help="Allow an empty filter: every row.")
@click.option("--dry-run", is_flag=True, help="Show what matches; change nothing.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for the running gateway to publish (or fail) every queued row.")
@click.option("--timeout", type=SECONDS, default=120.0, show_default=True,
              help="Seconds --wait waits before giving up on rows still pending.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def replay(config: Path, ids: tuple[int, ...], since: float | None, until: float | None,
           sender: str | None, message_type: str | None, status: str | None,
           everything: bool, dry_run: bool, wait: bool, timeout: float, yes: bool) -> None:
    """Map and publish spooled messages again, e.g. after a profile fix.

    Matching published and failed rows go back to pending with their replay count + 1; the
    running gateway (which shares the spool file) maps them with the profiles live now
    and publishes them within about a second, with event ids ending in "-r<count>".
    Rows still pending are left alone. An empty filter is refused unless --all is given.
    Each replay is recorded in the gateway's audit log (console.audit_path), as the
    console's are, with your login name as the user; if that log cannot be written,
    nothing is replayed.

    Exits 0 when every queued row was published, 1 when some failed again or were still
    pending after --timeout (is the gateway running?), 2 on a usage or spool error.
    """
    from gateway.spool import MessageFilter

    flt = MessageFilter(ids=ids, sender=sender, message_type=message_type, status=status,
                        since=since, until=until)
    if flt == MessageFilter() and not everything:
        fail("no filter given: name rows with --id, --since, --until, --sender, "
             "--type or --status, or pass --all to replay every message")
    settings = load_config(config)
    if not settings.spool.path.exists():
        fail(f"no spool at {settings.spool.path} (spool.path in {config})")
    from gateway.errors import EncryptionError
    from gateway.keys.providers import configured_keyring

    try:  # the spool is opened with its keys, as the gateway opens it
        keyring = configured_keyring(settings.encryption)
    except EncryptionError as exc:
        fail(str(exc))
    code = asyncio.run(_replay(settings.spool.path, flt, dry_run=dry_run, wait=wait,
                               wait_s=timeout, yes=yes, audit=settings.console.audit_path,
                               keyring=keyring))
    sys.exit(code)


async def _replay(path: Path, flt: Any, *, dry_run: bool, wait: bool, wait_s: float,
                  yes: bool, audit: Path, keyring: Keyring | None) -> int:
    from gateway.audit import AuditLog
    from gateway.replay import Actor, ReplayService
    from gateway.spool import Spool

    spool = Spool(path, keyring=keyring)
    await spool.start()
    try:
        service = ReplayService(spool, AuditLog(audit))  # the console's service and log
        matching = await service.matching(flt)
        queue = sorted(m.id for m in matching if m.status != "pending")
        by_status: dict[str, int] = {}
        for m in matching:
            by_status[m.status] = by_status.get(m.status, 0) + 1
        detail = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
        click.echo(f"{len(matching)} message(s) match" + (f" ({detail})" if detail else ""))
        if by_status.get("pending"):
            click.echo(f"{by_status['pending']} pending row(s) are left as they are")
        if dry_run or not queue:
            for m in sorted(matching, key=lambda m: m.id)[:20]:
                click.echo(f"  {m.id:>8}  {_iso(m.received_at)}  {m.sender}  "
                           f"{m.message_type}  {m.status}  replays={m.replays}")
            if len(matching) > 20:
                click.echo(f"  ... and {len(matching) - 20} more")
            if dry_run:
                click.echo("dry run: nothing changed")
            return 0
        await service.audit.writable()  # before asking: a replay must be recorded
        if not yes:
            click.confirm(f"Replay {len(queue)} message(s)?", abort=True, err=True)
        queued = await service.replay(flt, Actor.os_user(), only=queue)
        click.echo(f"queued {len(queued)} message(s) for the running gateway to publish")
        if not wait or not queued:
            return 0
        return await _wait_replayed(spool, queued, wait_s)
    finally:
        await spool.stop()


def _chunks(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def _iso(ts: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


async def _wait_replayed(spool: Any, queued: list[int], wait_s: float) -> int:
    """Progress until every queued row left ``pending``; summary; exit code."""
    import time

    from gateway.spool import MessageFilter

    settled: dict[int, Any] = {}
    deadline = time.monotonic() + wait_s
    with click.progressbar(length=len(queued), label="publishing", file=sys.stderr) as bar:
        while len(settled) < len(queued) and time.monotonic() < deadline:
            waiting = [i for i in queued if i not in settled]
            for chunk in _chunks(waiting, 10_000):
                rows = await spool.find(MessageFilter(ids=tuple(chunk)), limit=len(chunk))
                done = [r for r in rows if r.status != "pending"]
                for r in done:
                    settled[r.id] = r
                bar.update(len(done))
            if len(settled) < len(queued):
                await asyncio.sleep(0.25)
    published = sum(r.status == "published" for r in settled.values())
    reasons: dict[str, int] = {}
    for r in settled.values():
        if r.status == "failed":
            reason = r.last_error or "(no reason kept)"
            reasons[reason] = reasons.get(reason, 0) + 1
    pending = len(queued) - len(settled)
    click.echo(f"{published} published, {sum(reasons.values())} failed, {pending} still pending")
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        click.echo(f"  failed {n}x: {reason}")
    if pending:
        click.echo(f"{pending} row(s) still pending after {wait_s:g} s: is the gateway "
                   "running on this spool? They go out when it runs.", err=True)
    return 1 if pending or reasons else 0
