"""The ``tollgate`` command: run the gateway, the simulator and the relay, and administer.

Admin commands print exactly one JSON object on stdout (money as decimal strings) and exit
non-zero with ``{"error": …}`` when refused. Every command takes ``--data-dir`` for the
embedded PostgreSQL, or uses ``DATABASE_URL`` when it is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from shared.errors import TollgateError
from shared.settings import Settings, default_data_dir

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator
    from decimal import Decimal

__all__ = ("main",)

T = TypeVar("T")

_DATA_DIR_HELP: Final = "Directory of the embedded PostgreSQL (ignored when DATABASE_URL is set)."


def _emit(payload: dict[str, Any]) -> None:
    click.echo(json.dumps(payload, default=str))


def _fail(message: str) -> None:
    click.echo(json.dumps({"error": message}))
    sys.exit(1)


@contextlib.contextmanager
def database(data_dir: str | None) -> Iterator[str]:
    """Yield a database URL: ``DATABASE_URL``, or the embedded server (attached or started)."""
    url = os.environ.get("DATABASE_URL") or os.environ.get("TOLLGATE_DATABASE_URL")
    if url:
        yield url
        return
    from shared.postgres import EmbeddedPostgres

    server = EmbeddedPostgres(data_dir or default_data_dir())
    try:
        yield server.start()
    finally:
        server.stop()


def _run_admin(data_dir: str | None, action: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """Migrate, open a session, run ``action``; turn domain errors into JSON refusals."""
    from shared.database import create_engine, migrate, session_factory

    async def run(url: str) -> T:
        engine = create_engine(url, pool=False)
        try:
            async with session_factory(engine)() as session:
                return await action(session)
        finally:
            await engine.dispose()

    try:
        with database(data_dir) as url:
            migrate(url)
            return asyncio.run(run(url))
    except (TollgateError, ValueError) as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


data_dir_option = click.option("--data-dir", default=None, help=_DATA_DIR_HELP)


@click.group()
def main() -> None:
    """Tollgate: an LLM API wholesale gateway."""


@main.command()
@data_dir_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--console-port", default=3000, show_default=True, type=int)
@click.option("--no-console", is_flag=True, help="Serve the gateway only.")
def up(
    data_dir: str | None,
    host: str,
    port: int,
    workers: int,
    console_port: int,
    no_console: bool,
) -> None:
    """Run the gateway (and the console) on the embedded or given PostgreSQL."""
    from gateway.server import serve_gateway

    with database(data_dir) as url:
        from shared.database import migrate

        migrate(url)
        settings = Settings.from_env(os.environ)
        settings = Settings(
            database=type(settings.database)(
                **{**_fields(settings.database), "url": url, "data_dir": data_dir}
            ),
            gateway=type(settings.gateway)(
                **{**_fields(settings.gateway), "host": host, "port": port, "workers": workers}
            ),
            billing=settings.billing,
        )
        click.echo(f"Tollgate gateway: http://{host}:{port}/v1  (OpenAI-compatible base URL)")
        console = None if no_console else _start_console(url, host, console_port)
        try:
            serve_gateway(settings)
        finally:
            if console is not None:
                _stop_child(console)


def _start_console(url: str, host: str, port: int) -> subprocess.Popen[bytes]:
    """Start the console as a child process (the gateway never imports the console)."""
    password = asyncio.run(_first_admin(url))
    console = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "console", "--host", host, "--port", str(port)],
        env={**os.environ, "DATABASE_URL": url},
    )
    click.echo(f"Console: http://{host}:{port}/  (the first start builds it; it says when ready)")
    if password:
        click.echo(f"First admin: user `admin`, password `{password}`  (shown once)")
    return console


def _stop_child(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


async def _first_admin(url: str) -> str | None:
    """Create the first admin if there is none; return its one-time password."""
    from shared.database import create_engine, session_factory
    from shared.services.users import ensure_first_admin

    engine = create_engine(url, pool=False)
    try:
        async with session_factory(engine)() as session:
            return await ensure_first_admin(session)
    finally:
        await engine.dispose()


@main.command("console")
@data_dir_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@click.option("--admin-password", default=None, help="First admin's password (random when unset).")
def console_command(data_dir: str | None, host: str, port: int, admin_password: str | None) -> None:
    """Run the console alone."""
    with database(data_dir) as url:
        from shared.database import migrate

        migrate(url)
        args = [sys.executable, "-m", "console", "--host", host, "--port", str(port)]
        if admin_password:
            args += ["--admin-password", admin_password]
        code = subprocess.call(args, env={**os.environ, "DATABASE_URL": url})  # noqa: S603
    sys.exit(code)


def _fields(struct: Any) -> dict[str, Any]:
    import msgspec

    return msgspec.structs.asdict(struct)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def simulate(host: str, port: int, workers: int) -> None:
    """Run the provider simulator: fake OpenAI, Anthropic, Gemini and Workers AI upstreams."""
    from gateway.simulator import serve

    click.echo(f"Provider simulator: http://{host}:{port}/v1 (OpenAI), /v1beta (Gemini)")
    serve(host=host, port=port, workers=workers)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def relay(host: str, port: int, workers: int) -> None:
    """Run the edge relay (secret in TOLLGATE_RELAY_SECRET, table in TOLLGATE_RELAY_UPSTREAMS)."""
    from edge_proxy.asgi_app import serve as serve_relay

    click.echo(f"Edge relay: http://{host}:{port}/<prefix>/... (x-relay-key required)")
    serve_relay(host=host, port=port, secret=None, upstreams=None, workers=workers)


@main.command()
@data_dir_option
def migrate(data_dir: str | None) -> None:
    """Apply database migrations and exit."""
    from shared.database import migrate as run_migrations

    with database(data_dir) as url:
        run_migrations(url)
    _emit({"migrated": True})


@main.command()
@data_dir_option
def audit(data_dir: str | None) -> None:
    """Check that every balance equals its ledger and no hold outlived its expiry."""
    from shared.services.admin import audit as run_audit

    problems = _run_admin(data_dir, run_audit)
    if problems:
        _emit(
            {
                "ok": False,
                "problems": [{"tenant": p.tenant, "problem": p.problem} for p in problems],
            }
        )
        sys.exit(1)
    _emit({"ok": True, "problems": []})


@main.group()
def admin() -> None:
    """Administer tenants, groups, prices, channels and keys."""


@admin.group()
def tenant() -> None:
    """Tenants and their balances."""


@tenant.command("add")
@click.argument("name")
@click.option("--balance", default="0", help="Opening balance, USD.")
@click.option("--group", default="default", show_default=True)
@data_dir_option
def tenant_add(name: str, balance: str, group: str, data_dir: str | None) -> None:
    """Create a tenant."""
    from shared.money import format_usd
    from shared.services.admin import add_tenant

    row = _run_admin(data_dir, lambda s: add_tenant(s, name, balance=balance, group=group))
    _emit({"id": row.id, "name": row.name, "balance": format_usd(row.balance), "group": group})


@tenant.command("credit", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("amount")
@click.option("--note", default="", help="Why; kept in the ledger.")
@data_dir_option
def tenant_credit(name: str, amount: str, note: str, data_dir: str | None) -> None:
    """Add AMOUNT USD to a tenant (negative to take it away)."""
    from shared.money import format_usd
    from shared.services.admin import credit_tenant

    balance = _run_admin(data_dir, lambda s: credit_tenant(s, name, amount, note=note))
    _emit({"name": name, "balance": format_usd(balance)})


@admin.group()
def group() -> None:
    """Pricing groups."""


@group.command("add")
@click.argument("name")
@click.option("--ratio", required=True, help="Price multiplier, e.g. 0.8.")
@data_dir_option
def group_add(name: str, ratio: str, data_dir: str | None) -> None:
    """Create a pricing group."""
    from shared.services.admin import add_group

    row = _run_admin(data_dir, lambda s: add_group(s, name, ratio))
    _emit({"id": row.id, "name": row.name, "ratio": str(row.ratio)})


@admin.group()
def price() -> None:
    """Model prices (USD per million tokens)."""


@price.command("set")
@click.argument("model")
@click.option("--input", "input_", required=True, help="USD per million input tokens.")
@click.option("--output", required=True, help="USD per million output tokens.")
@click.option("--cached-input", default=None, help="USD per million cached input tokens.")
@data_dir_option
def price_set(
    model: str, input_: str, output: str, cached_input: str | None, data_dir: str | None
) -> None:
    """Set a model's price."""
    from shared.services.admin import set_price

    row = _run_admin(
        data_dir,
        lambda s: set_price(s, model, input=input_, output=output, cached_input=cached_input),
    )
    _emit(
        {
            "model": row.model,
            "input": _plain(row.input),
            "output": _plain(row.output),
            "cached_input": None if row.cached_input is None else _plain(row.cached_input),
        }
    )


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values:
        left, sep, right = value.partition("=")
        if not sep or not left or not right:
            _fail(f"{what} `{value}` must look like client=upstream")
        result[left] = right
    return result


@admin.group()
def channel() -> None:
    """Upstream channels."""


@channel.command("add")
@click.argument("name")
@click.option(
    "--kind", required=True, type=click.Choice(["openai", "anthropic", "gemini", "workers-ai"])
)
@click.option("--base-url", required=True, help="As the provider's SDK takes it (…/v1 for OpenAI).")
@click.option("--api-key", default="", help="The upstream's key.")
@click.option("--models", required=True, help="Comma-separated model names clients may ask for.")
@click.option("--map", "mapping", multiple=True, help="client=upstream model name; repeatable.")
@click.option("--priority", default=0, show_default=True, type=int, help="Lower is tried first.")
@click.option("--weight", default=1, show_default=True, type=int)
@click.option("--groups", default=None, help="Comma-separated groups allowed (default: all).")
@click.option("--relay-url", default=None, help="Edge relay address plus prefix, e.g. …/openai.")
@click.option("--relay-secret", default=None, help="The edge relay's shared secret.")
@click.option("--setting", "settings", multiple=True, help="key=value channel option; repeatable.")
@data_dir_option
def channel_add(
    name: str,
    kind: str,
    base_url: str,
    api_key: str,
    models: str,
    mapping: tuple[str, ...],
    priority: int,
    weight: int,
    groups: str | None,
    relay_url: str | None,
    relay_secret: str | None,
    settings: tuple[str, ...],
    data_dir: str | None,
) -> None:
    """Create an upstream channel."""
    from shared.services.admin import add_channel

    model_list = [m.strip() for m in models.split(",") if m.strip()]
    model_map = _pairs(mapping, "--map")
    row = _run_admin(
        data_dir,
        lambda s: add_channel(
            s,
            name,
            kind=kind,
            base_url=base_url,
            api_key=api_key,
            models=model_list,
            model_map=model_map,
            priority=priority,
            weight=weight,
            groups=[g.strip() for g in groups.split(",")] if groups else None,
            relay_url=relay_url,
            relay_secret=relay_secret,
            settings=dict(_pairs(settings, "--setting")) if settings else None,
        ),
    )
    _emit(
        {
            "id": row.id,
            "name": row.name,
            "kind": row.kind,
            "base_url": row.base_url,
            "models": row.models,
            "model_map": row.model_map,
            "priority": row.priority,
            "weight": row.weight,
            "relay_url": row.relay_url,
            "settings": row.settings,
        }
    )


@admin.group()
def key() -> None:
    """Tenants' API keys."""


@key.command("add")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--name", default="")
@click.option("--models", default=None, help="Comma-separated allow-list (default: all).")
@click.option("--spend-limit", default=None, help="USD this key may spend in total.")
@click.option("--rpm", default=None, type=int, help="Requests per minute.")
@click.option("--expires-in-days", default=None, type=int)
@data_dir_option
def key_add(
    tenant_name: str,
    name: str,
    models: str | None,
    spend_limit: str | None,
    rpm: int | None,
    expires_in_days: int | None,
    data_dir: str | None,
) -> None:
    """Create an API key; the full key is printed once and never stored."""
    from shared.services.admin import add_key

    expires = (
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=expires_in_days)
        if expires_in_days is not None
        else None
    )
    row, full = _run_admin(
        data_dir,
        lambda s: add_key(
            s,
            tenant_name,
            name=name,
            models=[m.strip() for m in models.split(",") if m.strip()] if models else None,
            spend_limit=spend_limit,
            rpm_limit=rpm,
            expires_at=expires,
        ),
    )
    _emit(
        {
            "id": row.id,
            "key": full,
            "prefix": row.prefix,
            "tenant": tenant_name,
            "name": row.name,
            "models": row.models,
            "expires_at": None if expires is None else expires.isoformat(),
        }
    )


@key.command("revoke")
@click.argument("key_id", type=int)
@data_dir_option
def key_revoke(key_id: int, data_dir: str | None) -> None:
    """Revoke a key; running gateways refuse it within a second."""
    from shared.services.admin import revoke_key

    row = _run_admin(data_dir, lambda s: revoke_key(s, key_id))
    _emit({"id": row.id, "status": row.status})


@admin.group()
def user() -> None:
    """Console users (admins and tenant users)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "tenant"]), required=True)
@click.option("--tenant", "tenant_name", default=None, help="The tenant of a tenant user.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@data_dir_option
def user_add(
    name: str, role: str, tenant_name: str | None, password: str, data_dir: str | None
) -> None:
    """Create a console user."""
    from shared.services.users import create_user

    row = _run_admin(
        data_dir, lambda s: create_user(s, name, password, role=role, tenant=tenant_name)
    )
    _emit({"id": row.id, "username": row.username, "role": row.role, "tenant": tenant_name})


@user.command("set-password")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@data_dir_option
def user_set_password(name: str, password: str, data_dir: str | None) -> None:
    """Set a console user's password and end the user's sessions."""
    from shared.services.users import set_password

    row = _run_admin(data_dir, lambda s: set_password(s, name, password))
    _emit({"id": row.id, "username": row.username})


@admin.command("balance")
@click.argument("name")
@data_dir_option
def balance(name: str, data_dir: str | None) -> None:
    """Show a tenant's balance, ledger sum and open holds (USD)."""
    from shared.services.admin import balance_report

    _emit(_run_admin(data_dir, lambda s: balance_report(s, name)))
