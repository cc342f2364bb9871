"""``hl7gw console``: helpers for the web console (bearer tokens)."""

from __future__ import annotations

import click


@click.group()
def console() -> None:
    """The web console and admin API (see docs/console.md)."""


@console.command("token")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator"]), required=True,
              help="viewer: message metadata; operator: also bodies and replay.")
def console_token(name: str, role: str) -> None:
    """Make a new bearer token for NAME and the config line that admits it.

    Prints the token (hand it to NAME; it is kept nowhere else) and, on the next line, the
    entry to put under ``console.users`` in the gateway config: only the token's SHA-256
    goes there.
    """
    import hashlib
    import json
    import re
    import secrets

    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    # A plain name stays plain; anything else becomes a double-quoted scalar (JSON string
    # syntax is valid YAML), so the line always parses back to the same name.
    shown = name if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]*", name) else json.dumps(name)
    click.echo(token)
    click.echo(f"- {{name: {shown}, role: {role}, token_sha256: {digest}}}")
    click.echo(f"The first line is {name}'s token; put the second under console.users: in "
               "the gateway config and restart the gateway.", err=True)
