"""`eventbook serve` (the HTTP API on uvicorn, with the application's projections and sagas
running in the same process) and `eventbook tokens create | list | revoke`."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.markup import escape

from eventbook.cli import output
from eventbook.cli.apps import AppOption, remember_app, resolve_app
from eventbook.cli.options import JsonOption, StoreOption
from eventbook.cli.stores import open_for_writing, store_url
from eventbook.errors import InvalidInput

DEFAULT_TOKENS = "./eventbook-tokens.json"

TokensOption = Annotated[
    str,
    typer.Option(
        "--tokens",
        envvar="EVENTBOOK_TOKENS",
        metavar="FILE",
        help="The API tokens file (hashed tokens; created by `eventbook tokens create`).",
    ),
]

tokens_app = typer.Typer(
    name="tokens",
    help="API tokens for `eventbook serve`: create, list, revoke.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def _token_store(path: str) -> Any:
    from eventbook.http.tokens import TokenStore  # the http extra is only needed here

    return TokenStore(path)


def _http_modules() -> tuple[Any, Any]:
    try:
        import uvicorn

        from eventbook import http
    except ImportError as exc:
        raise InvalidInput(
            f"eventbook serve needs the http extra ({exc.name} is missing): "
            "pip install 'eventbook[http]'"
        ) from None
    return http, uvicorn


def serve(
    ctx: typer.Context,
    app: AppOption = None,
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The TCP port.", min=0, max=65535)] = 8000,
    no_auth: Annotated[
        bool,
        typer.Option("--no-auth", help="Serve without tokens (for local use only)."),
    ] = False,
    tokens: TokensOption = DEFAULT_TOKENS,
    store: StoreOption = None,
) -> None:
    """Serve the application over HTTP (docs/http.md): commands, streams, the log, live
    Server-Sent Events, the time machine, read models, health and metrics; its projections
    and sagas run in the same process. Every route but /health needs a token unless
    --no-auth is given."""
    http, uvicorn = _http_modules()
    token_store = None if no_auth else _token_store(tokens)
    if token_store is not None and not token_store.list():
        output.stderr_console().print(
            f"[yellow]no API token in {escape(tokens)}[/]: every request but /health gets 401 "
            "until one is created (`eventbook tokens create --name NAME --role write`)"
        )
    url = store_url(ctx, store)
    with open_for_writing(url) as opened:
        path, application = resolve_app(opened, app)
        remember_app(opened, path)
        from eventbook.engine.engine import Engine
        from eventbook.sagas.runner import SagaRunner

        engine = Engine(application, opened)
        runners = [SagaRunner(engine, saga) for saga in application.sagas]
        projections = _projections(opened, application)
        api = http.create_app(
            application, opened, tokens=token_store, engine=engine, projections=projections
        )
        for runner in runners:
            runner.start()
        if projections is not None:
            projections.start()
        err = output.stderr_console()
        auth = "without tokens (--no-auth)" if no_auth else f"tokens from {tokens}"
        err.print(
            f"serving {escape(application.name)} on http://{host}:{port} over {escape(opened.url)}"
            f", {escape(auth)}"
        )
        try:
            uvicorn.run(api, host=host, port=port, log_level="warning", access_log=False)
        finally:
            for runner in runners:
                runner.stop()
            if projections is not None:
                projections.stop()
                for model in {id(m): m for m in projections.read_models.values()}.values():
                    model.close()


def _projections(store: Any, application: Any) -> Any:
    if not application.projections:
        return None
    from eventbook.projections.runner import ProjectionRunner
    from eventbook.read_models import open_read_models

    kinds = {p.target for p in application.projections}
    return ProjectionRunner(store, application, open_read_models(store, kinds))


@tokens_app.command("create")
def create_token(
    name: Annotated[str, typer.Option("--name", help="Who uses it: recorded as the actor.")],
    role: Annotated[str, typer.Option("--role", help="read, write or admin.")] = "read",
    tokens: TokensOption = DEFAULT_TOKENS,
) -> None:
    """Create a token and print it once (only its hash is kept)."""
    record, token = _token_store(tokens).create(name, role)
    output.stderr_console().print(
        f"token {record.id} for {escape(record.name)} ({record.role}); it is shown once:"
    )
    typer.echo(token)


@tokens_app.command("list")
def list_tokens(as_json: JsonOption = False, tokens: TokensOption = DEFAULT_TOKENS) -> None:
    """List the tokens (never the tokens themselves): id, name, role, created, revoked."""
    records = _token_store(tokens).list() if os.path.exists(tokens) else []
    if as_json:
        for record in records:
            output.json_line(record.public())
        return
    console = output.stdout_console()
    for record in records:
        state = f"revoked {record.revoked_at}" if record.revoked_at else "active"
        console.print(f"{record.id}  {escape(record.name):24} {record.role:6} {state}")
    if not records:
        output.stderr_console().print(f"no tokens in {tokens}", style="dim")


@tokens_app.command("revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(help="The token's id, as `tokens list` shows it.")],
    tokens: TokensOption = DEFAULT_TOKENS,
) -> None:
    """Revoke a token: requests with it get 401 from then on."""
    record = _token_store(tokens).revoke(token_id)
    output.stdout_console().print(f"revoked {record.id} ({escape(record.name)})")
