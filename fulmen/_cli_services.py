"""`fulmen kafka`, `fulmen kube` and `fulmen store`: the services Fulmen runs on, started,
prepared and served from the command line."""

from __future__ import annotations

import typer

kafka_app = typer.Typer(no_args_is_help=True, help="A local Apache Kafka broker for development.")
kube_app = typer.Typer(no_args_is_help=True, help="A local Kubernetes control plane for tests.")
store_app = typer.Typer(no_args_is_help=True, help="The LightningStore (ClickHouse).")


@kafka_app.command("jars")
def kafka_jars() -> None:
    """Fetch Kafka's jars from Maven Central into the cache (once)."""
    from fulmen.local import ensure_kafka_jars

    typer.echo(ensure_kafka_jars())


@kafka_app.command("up")
def kafka_up(
    port: int = typer.Option(9092, help="Port of the client listener."),
    secure: bool = typer.Option(
        False,
        help="SASL_SSL (SCRAM-SHA-512) instead of PLAINTEXT: FULMEN_KAFKA__SASL_USERNAME and "
        "FULMEN_KAFKA__SASL_PASSWORD become the broker's super user (on a new data directory).",
    ),
) -> None:
    """Start a single-node KRaft broker on 127.0.0.1 that outlives this command."""
    from fulmen.local import BrokerSecurity, up

    security = None
    if secure:
        from fulmen.producers import FulmenSettings

        kafka = FulmenSettings().kafka
        if kafka.sasl_username is None or kafka.sasl_password is None:
            raise typer.BadParameter(
                "--secure needs FULMEN_KAFKA__SASL_USERNAME and FULMEN_KAFKA__SASL_PASSWORD"
            )
        password = kafka.sasl_password.get_secret_value()
        security = BrokerSecurity(admin_user=kafka.sasl_username, admin_password=password)
    typer.echo(f"kafka running at {up(port, security=security)}")
    if security is not None:
        typer.echo(
            "clients trust .fulmen/kafka/data-dir/tls/ca.pem (FULMEN_KAFKA__SSL_CA_LOCATION)"
        )


@kafka_app.command("topics")
def kafka_topics(
    partitions: int = typer.Option(
        4, min=1, help="Partitions of the event topics (= FULMEN_WORKER_PARTITIONS)."
    ),
) -> None:
    """Create Fulmen's topics that do not exist yet on the broker of `FULMEN_KAFKA__*`:
    spans, rewards, rollouts, episodes and dead letters with --partitions each, the control
    topic with one. Prints each topic's partition count."""
    from fulmen.kafka import create_fulmen_topics
    from fulmen.producers import FulmenSettings

    settings = FulmenSettings()
    found = create_fulmen_topics(settings.kafka, settings.topics, partitions=partitions)
    for topic, count in found.items():
        typer.echo(f"{topic}: {count} partition{'' if count == 1 else 's'}")


@kafka_app.command("acls")
def kafka_acls(
    principal: str = typer.Argument(help="Who is granted the rights, e.g. User:fulmen."),
) -> None:
    """Grant PRINCIPAL what every Fulmen client needs, and nothing more, on the cluster of
    `FULMEN_KAFKA__*` (whose user may alter ACLs, e.g. a super user): the topics of
    `FULMEN_TOPICS__PREFIX`, and the worker's (`FULMEN_WORKER_APP_ID`) changelog and
    consumer group. Prints each ACL."""
    from fulmen.kafka import describe_acl, fulmen_acls, grant_acls
    from fulmen.producers import FulmenSettings
    from fulmen.streams import WorkerSettings

    settings = FulmenSettings()
    bindings = fulmen_acls(principal, settings.topics, app_id=WorkerSettings().app_id)
    grant_acls(settings.kafka, bindings)
    for acl in bindings:
        typer.echo(describe_acl(acl))


@kafka_app.command("down")
def kafka_down() -> None:
    """Stop the broker started by `fulmen kafka up`."""
    from fulmen.local import down

    typer.echo("kafka stopped" if down() else "no kafka was running")


@kube_app.command("bins")
def kube_bins() -> None:
    """Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and
    kwok from the Go module proxy into the cache (once; minutes to tens of minutes on 2 cores)."""
    from fulmen.local import ensure_kube_binaries

    typer.echo(ensure_kube_binaries())


@store_app.command("migrate")
def store_migrate() -> None:
    """Apply the store's pending schema migrations (they also run on first use)."""
    from fulmen.producers import FulmenSettings
    from fulmen.store import connect, migrate

    settings = FulmenSettings().store
    client = connect(settings)
    applied = migrate(client, settings)
    for migration in applied:
        typer.echo(f"applied {migration.version:04d}_{migration.name}")
    typer.echo(f"{settings.database}: {len(applied)} migration(s) applied, schema up to date")


@store_app.command("forget")
def store_forget(
    user: str = typer.Option(..., "--user", help="The user id (`fulmen.rollout(user_id=…)`)."),
) -> None:
    """Delete a user's rollouts from the store and keep them out of every later window
    (docs/store.md#forgetting-a-user). Run it again to delete what arrived since."""
    from fulmen.producers import FulmenSettings
    from fulmen.store import LightningStore

    store = LightningStore(FulmenSettings().store)
    try:
        forgotten = store.forget_user(user)
    finally:
        store.close()
    deleted = ", ".join(f"{table} {rows}" for table, rows in forgotten.rows.items() if rows)
    typer.echo(
        f"forgot {len(forgotten.rollout_ids)} rollout(s) of the user; rows deleted: "
        f"{deleted or 'none'}"
    )


@store_app.command("serve")
def store_serve(
    host: str = typer.Option(
        "127.0.0.1", help="Address to listen on; a non-loopback one needs a password."
    ),
    port: int = typer.Option(8123, help="Port of the ClickHouse HTTP interface."),
    insecure_no_auth: bool = typer.Option(
        False,
        "--insecure-no-auth",
        help="DEVELOPMENT ONLY: serve without a password (FULMEN_STORE__PASSWORD empty); "
        "any local process may then read, write and drop the store as the writing user. "
        "Refused on a non-loopback --host.",
    ),
) -> None:
    """Serve the embedded store over ClickHouse's HTTP protocol.

    The store-owning process: other processes, clickhouse-connect, curl and any ClickHouse
    client use the store through it (chDB opens a data directory in one process only).
    Clients authenticate as the writing user (FULMEN_STORE__USERNAME/PASSWORD) or a
    read-only reader (FULMEN_STORE__READERS); it does not start without a password unless
    --insecure-no-auth is given. No user may call table functions, engines or settings that
    reach this host's files, programs or network.
    """
    from fulmen.producers import FulmenSettings
    from fulmen.store import LightningStore, StoreServer, StoreUser, serve

    settings = FulmenSettings().store
    if settings.url is not None:
        typer.echo(f"the store is the server at {settings.url}; nothing to serve", err=True)
        raise typer.Exit(2)
    password = settings.password.get_secret_value()
    if insecure_no_auth and password:
        typer.echo("--insecure-no-auth with FULMEN_STORE__PASSWORD set: drop one", err=True)
        raise typer.Exit(2)
    users = {settings.username: StoreUser(password=password)}
    users |= {
        name: StoreUser(password=secret.get_secret_value(), readonly=True)
        for name, secret in settings.readers.items()
    }

    def ready(server: StoreServer) -> None:
        typer.echo(f"LightningStore {settings.path} at {server.url} (database {settings.database})")

    server = StoreServer(settings.path, host=host, port=port, users=users,
                         insecure_no_auth=insecure_no_auth)  # fmt: skip
    LightningStore(settings).close()  # migrated before anyone connects
    serve(server, on_ready=ready)
