"""`fulmen serve` and `fulmen gateway`: the policy server agents call, and the proxy that
records their calls. Registered on the `fulmen` app in `fulmen/cli.py`."""

from __future__ import annotations

import typer


def serve(
    model: str = typer.Option(
        "smollm2", help='A Hugging Face model directory, or "smollm2" (built once, cached).'
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port of the OpenAI-compatible API."),
    name: str | None = typer.Option(None, help="The base model's request name (default: dir)."),
    follow_versions: bool = typer.Option(
        False, help="Load each version published on the Kafka control topic (FULMEN_KAFKA__*)."
    ),
    replica_id: str | None = typer.Option(
        None, help="Acknowledge versions as this replica (FULMEN_SERVE_REPLICA_ID; HOSTNAME)."
    ),
    pool: str | None = typer.Option(
        None, help='The replicas\' pool acknowledgements name (FULMEN_SERVE_POOL; "default").'
    ),
    unload_grace_s: float | None = typer.Option(
        None, help="Unload versions no longer needed after this long (FULMEN_SERVE_UNLOAD_GRACE_S)."
    ),
    access_log: bool = typer.Option(True, help="Log a line per request, like uvicorn."),
) -> None:
    """Serve a policy model with an OpenAI-compatible API, like vLLM (docs/serving.md).

    Chat completions with token ids and logprobs, and vLLM's runtime LoRA API
    (/v1/load_lora_adapter, /v1/unload_lora_adapter) for published versions; with
    --follow-versions, loads are acknowledged on the control topic and versions no longer
    needed are unloaded after a grace period (docs/serving.md#the-fleet). API keys
    (FULMEN_SERVE_API_KEYS, FULMEN_SERVE_API_KEY_FILE; required beyond loopback) and the
    directories versions load from (FULMEN_SERVE_MODEL_ROOTS) are settings.
    """
    from pathlib import Path

    from fulmen.auth import check_exposure
    from fulmen.models import base_model_dir
    from fulmen.producers import FulmenSettings
    from fulmen.serving import AdapterFollower, PolicyServer, ServeSettings
    from fulmen.serving import serve as serve_policy

    settings = ServeSettings()
    keys = settings.load_api_keys()
    check_exposure(keys, host, service="policy server", env_prefix="FULMEN_SERVE_")
    directory = base_model_dir() if model == "smollm2" else Path(model)
    if not (directory / "config.json").is_file():
        typer.echo(f"{directory} is not a Hugging Face model directory", err=True)
        raise typer.Exit(2)
    server = PolicyServer(directory, name=name, model_roots=settings.model_roots)
    typer.echo(f"serving {server.name} ({server.precision}) at http://{host}:{port}/v1")
    if follow_versions:  # it retries until the server below answers
        follower = AdapterFollower(
            f"http://{host}:{port}/v1",
            FulmenSettings(),
            api_key=keys.own,
            replica_id=replica_id or settings.replica_id,
            pool=pool or settings.pool,
            unload_grace_s=settings.unload_grace_s if unload_grace_s is None else unload_grace_s,
        )
        follower.start()
    serve_policy(server, host=host, port=port, access_log=access_log, keys=keys)


def gateway(
    upstream: str | None = typer.Option(
        None, help="OpenAI base URL of the model server (default: FULMEN_GATEWAY_UPSTREAM_URL)."
    ),
    host: str | None = typer.Option(None, help="Address to listen on."),
    port: int | None = typer.Option(None, help="Port of the gateway."),
) -> None:
    """Run the gateway: an OpenAI-compatible proxy that records agents' calls (docs/gateway.md).

    Agents in any language point their base URL at
    http://<host>:<port>/rollouts/<rollout id>/v1. Events go where `FULMEN_*` says (set
    FULMEN_TRANSPORT=kafka); the gateway's own settings are `FULMEN_GATEWAY_*`, its API keys
    among them (FULMEN_GATEWAY_API_KEYS, FULMEN_GATEWAY_API_KEY_FILE; required beyond
    loopback) and the upstream's (FULMEN_GATEWAY_UPSTREAM_API_KEY).
    """
    from fulmen.auth import check_exposure
    from fulmen.producers.gateway import GatewaySettings, open_gateway, serve_gateway

    given = {"upstream_url": upstream, "host": host, "port": port}
    settings = GatewaySettings.model_validate({k: v for k, v in given.items() if v is not None})
    keys = settings.load_api_keys()  # before Kafka: a refusal comes at once
    check_exposure(keys, settings.host, service="gateway", env_prefix="FULMEN_GATEWAY_")
    running = open_gateway(settings)
    typer.echo(
        f"gateway at http://{settings.host}:{settings.port} in front of {settings.upstream_url}"
    )
    serve_gateway(running, host=settings.host, port=settings.port)
