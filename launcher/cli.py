"""The `assistants` command: `up` (everything, embedded), `api` / `worker` / `migrate`, `keys`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

import httpx

from core.logging import configure_logging
from core.settings import Settings, get_settings
from launcher.embedded import EmbeddedStack, Ports
from launcher.processes import ChildProcess, port_is_open

DEFAULT_DATA_DIR = "assistants-data"
SERVICE_VARS = {
    "DATABASE_URL": "database_url",
    "REDIS_URL": "redis_url",
    "S3_ENDPOINT": "s3_endpoint",
    "TEMPORAL_ADDRESS": "temporal_address",
}


def _configured(settings: Settings) -> dict[str, str]:
    """Service URLs the user set (env or .env); the rest get started embedded."""
    values = {var: getattr(settings, attr) for var, attr in SERVICE_VARS.items()}
    if settings.s3_endpoint:
        values.update(S3_ACCESS_KEY=settings.s3_access_key,
                      S3_SECRET_KEY=settings.s3_secret_key.get_secret_value(),
                      S3_BUCKET_NAME=settings.s3_bucket_name)
    return {k: v for k, v in values.items() if v}


def _require(settings: Settings) -> None:
    missing = [var for var, attr in SERVICE_VARS.items() if not getattr(settings, attr)]
    if missing:
        sys.exit(f"error: {', '.join(missing)} not set. Set them (env or .env), or run "
                 "`assistants up` to start the embedded stack.")


def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    from api.app import create_app
    from core.migrate import upgrade
    from core.tracing import API_SERVICE_NAME, configure_tracing

    settings = get_settings()
    _require(settings)
    upgrade(settings.database_url)  # safe when several API processes start together
    tracer_provider = configure_tracing(API_SERVICE_NAME)  # OTEL_EXPORTER_OTLP_ENDPOINT
    # The bind host decides AUTH_MODE=auto: keys are required off loopback.
    app = create_app(settings, bind_host=args.host, tracer_provider=tracer_provider)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)


def cmd_worker(_: argparse.Namespace) -> None:
    from core.tracing import WORKER_SERVICE_NAME, configure_tracing
    from worker import run_worker

    settings = get_settings()
    _require(settings)
    tracer_provider = configure_tracing(WORKER_SERVICE_NAME)  # OTEL_EXPORTER_OTLP_ENDPOINT
    with asyncio.Runner(loop_factory=_fast_event_loop()) as runner:
        runner.run(run_worker(settings, tracer_provider=tracer_provider))


def _fast_event_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it; the API already runs on it): the
    worker's event loop and selector were a quarter of its CPU per run on asyncio's."""
    try:
        import uvloop
    except ImportError:  # e.g. Windows: asyncio's own loop
        return None
    return uvloop.new_event_loop


def cmd_migrate(_: argparse.Namespace) -> None:
    from core.migrate import upgrade

    settings = get_settings()
    if not settings.database_url:
        sys.exit("error: DATABASE_URL is not set.")
    upgrade(settings.database_url)
    print("migrations applied")


def cmd_keys(args: argparse.Namespace) -> None:
    from launcher.embedded_db import NoEmbeddedDatabase, embedded_database
    from launcher.keys import run_keys_command

    settings = get_settings()
    if settings.database_url and args.data_dir is None:
        sys.exit(run_keys_command(settings.database_url, args))
    # The embedded stack's database, whose URL changes at every `assistants up`.
    try:
        with embedded_database(Path(args.data_dir or DEFAULT_DATA_DIR).resolve()) as url:
            code = run_keys_command(url, args)
    except (NoEmbeddedDatabase, RuntimeError, TimeoutError) as exc:  # or it would not start
        sys.exit(f"error: {exc}")
    sys.exit(code)


def _wait_healthy(url: str, api: ChildProcess, timeout: float = 90.0) -> None:
    def healthy() -> bool:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200

    api.wait_until(healthy, timeout)


def cmd_up(args: argparse.Namespace) -> None:
    from core.migrate import upgrade

    settings = get_settings()
    data_dir = Path(args.data_dir).resolve()
    wanted_ports = [(args.port, "the API")]
    if not settings.temporal_address:
        wanted_ports += [(args.temporal_port, "Temporal"),
                         (args.temporal_ui_port, "the Temporal UI")]
    for port, what in wanted_ports:
        if port_is_open(port):
            sys.exit(f"error: port {port} (for {what}) is already in use.")
    ports = Ports(temporal=args.temporal_port, temporal_ui=args.temporal_ui_port)
    stack = EmbeddedStack(data_dir, ports)
    children: list[ChildProcess] = []

    def shutdown(signum: int, _: FrameType | None) -> None:
        # Once: a second SIGTERM must not interrupt the orderly stop below.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    try:
        print(f"starting the embedded stack in {data_dir} ...", flush=True)
        try:
            env = stack.start(_configured(settings))
        except (RuntimeError, TimeoutError) as exc:
            sys.exit(f"error: {exc}")
        upgrade(env["DATABASE_URL"])
        child_env = {**env, "PYTHONUNBUFFERED": "1"}
        logs = data_dir / "logs"
        api = ChildProcess("api", [sys.executable, "-m", "launcher.cli", "api", "--host",
                                   args.host, "--port", str(args.port)], logs / "api.log",
                           env=child_env)
        children.append(api)
        children.append(ChildProcess("worker", [sys.executable, "-m", "launcher.cli", "worker"],
                                     logs / "worker.log", env=child_env))
        api_url = f"http://{args.host}:{args.port}"
        try:
            _wait_healthy(api_url, api)
        except (RuntimeError, TimeoutError) as exc:
            sys.exit(f"error: the API did not start: {exc}")
        _print_table(api_url, stack, env, data_dir)
        _print_auth(settings, args.host, data_dir)
        while all(child.running() for child in children):
            time.sleep(0.5)
        crashed = [c for c in children if not c.running()]
        for child in crashed:
            print(f"{child.name} exited unexpectedly; last log lines:\n{child.log_tail()}",
                  file=sys.stderr)
        raise SystemExit(1)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        # The API and the worker first (together: neither needs the other), then
        # the servers they use.
        with ThreadPoolExecutor(max_workers=max(1, len(children))) as pool:
            list(pool.map(ChildProcess.stop, children))
        stack.stop()


def _print_table(api_url: str, stack: EmbeddedStack, env: dict[str, str], data_dir: Path) -> None:
    rows = [
        ("API (OpenAI base URL)", f"{api_url}/v1  (bare paths work too)"),
        ("Temporal UI", stack.urls.get("temporal_ui", "(external Temporal)")),
        ("Temporal", env["TEMPORAL_ADDRESS"]),
        ("Postgres", env["DATABASE_URL"].replace("+psycopg", "")),
        ("Redis", env["REDIS_URL"]),
        ("S3", f"{env['S3_ENDPOINT']}  bucket {env['S3_BUCKET_NAME']}"),
        ("Data dir", f"{data_dir}  (logs in {data_dir / 'logs'})"),
    ]
    width = max(len(name) for name, _ in rows)
    print("\nDurable Assistants is up:\n")
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")


def _print_auth(settings: Settings, host: str, data_dir: Path) -> None:
    """Whether the API checks keys: said here, not only in api.log, when it is open."""
    from api.auth import auth_required

    create = "assistants keys create --project NAME" + (
        "" if settings.database_url else f" --data-dir {data_dir}")  # else DATABASE_URL's
    if auth_required(settings, host):
        print(f"\nAPI keys are required; create one with:\n  {create}")
    else:
        why = ("AUTH_MODE=open" if settings.auth_mode == "open"
               else f"AUTH_MODE=auto on loopback host {host}")
        print(f"\nWARNING: authentication is OFF ({why}).\n"
              "API keys are not checked: any local user or process can use the API.\n"
              f"To require keys, create one:\n  {create}\n"
              "and restart with AUTH_MODE=required.")
    print("\nPress Ctrl-C to stop everything.", flush=True)


def main(argv: list[str] | None = None) -> None:
    configure_logging()  # LOG_LEVEL, LOG_FORMAT=text|json
    parser = argparse.ArgumentParser(prog="assistants", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run everything on the embedded stack")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=3000)
    up.add_argument("--temporal-port", type=int, default=7233,
                    help="Temporal frontend gRPC port (default: %(default)s)")
    up.add_argument("--temporal-ui-port", type=int, default=8233,
                    help="Temporal web UI port (default: %(default)s)")
    up.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    up.set_defaults(func=cmd_up)
    api = commands.add_parser("api", help="run the HTTP API (configured by env vars)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=3000)
    api.set_defaults(func=cmd_api)
    commands.add_parser("worker", help="run the Temporal worker").set_defaults(func=cmd_worker)
    commands.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    keys.set_defaults(func=cmd_keys)
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--data-dir", default=None,
        help="the embedded stack's data dir, running or not (default: DATABASE_URL if set, "
             f"else ./{DEFAULT_DATA_DIR})")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", parents=[where],
                                     help="create a key; it is printed only once")
    create.add_argument("--project", required=True, help="project the key acts for")
    create.add_argument("--name", default=None, help="a label shown by `keys list`")
    key_commands.add_parser("list", parents=[where],
                            help="list keys (prefixes only; keys are not stored)")
    revoke = key_commands.add_parser("revoke", parents=[where], help="revoke a key at once")
    revoke.add_argument("key_id", metavar="KEY_ID")
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
