"""``corral keys``: show the CURVE keys of the TCP endpoint, authorise clients, make keypairs."""

from __future__ import annotations

import click

from corral.api import ensure_home, settings_file

from .keys import allowed_keys, authorize, ensure_keys, new_client, read_public_key
from .settings import EXAMPLE, load_settings


@click.group(invoke_without_command=True)
@click.pass_context
def keys(ctx: click.Context) -> None:
    """Show the keys of the TCP endpoint (rpc_address), making them if none exist."""
    if ctx.invoked_subcommand is not None:
        return
    home = ensure_home()
    found = ensure_keys(home)
    server_key = read_public_key(found.server_secret, "server key").decode()
    allowed = sorted(p.name for p in allowed_keys(found.clients).values())
    address = load_settings(home).rpc_address
    click.echo(f"server key   {server_key}  (in {found.server_public}: clients' --server-key)")
    click.echo(f"client key   {found.client_secret}  (copy it to the client: --client-key)")
    click.echo(f"authorised   {found.clients}: {', '.join(allowed) or 'none'}")
    click.echo(
        f"rpc_address  {address}"
        if address
        else f"rpc_address  not set: add 'rpc_address: {EXAMPLE}' to {settings_file(home)}"
    )


@keys.command("add")
@click.argument("key")
@click.option("--name", help="The file name in keys/clients/ (default: the key file's).")
def keys_add(key: str, name: str | None) -> None:
    """Authorise a client: KEY is its public key file, or its 40-character key."""
    click.echo(f"authorised: {authorize(ensure_home(), key, name)}")


@keys.command("new")
@click.argument("name")
def keys_new(name: str) -> None:
    """Make a client keypair NAME, authorise it, and print the secret file to copy."""
    secret = new_client(ensure_home(), name)
    click.echo(f"authorised; copy {secret} to the client (--client-key)")
