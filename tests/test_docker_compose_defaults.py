"""docker/docker-compose.yml's defaults are safe: nothing but the API and the Temporal UI is
published, and without passwords it refuses to start (as the trusted compose files do).

Compose is not needed: `interpolate` below applies Compose's own interpolation rules
(`${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$`, ...) to every string of the parsed
file, which is what `docker compose config` does before anything starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from tests.test_docker_compose import COMPOSE_FILE, DOCKER, ENV_EXAMPLE, VALIDATOR, compose_schema

HOST_PORTS_FILE = DOCKER / "docker-compose.host-ports.yml"
# ${NAME}, ${NAME<op><arg>} with op one of :- - :? ? :+ +, $NAME, and $$ (a literal $).
_TOKEN = re.compile(r"\$(?:(\$)|\{([A-Za-z_]\w*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_]\w*))")
PASSWORDS = {"POSTGRES_PASSWORD": "pg-Secret-4711", "S3_SECRET_KEY": "s3-Secret-0815"}

__all__ = ["compose_schema"]  # a fixture, imported for the override file's check


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """`value` (parsed YAML) with Compose's interpolation applied to every string in it."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match[1]:
            return "$"
        name, op, arg = match[2] or match[5], match[3] or "", match[4] or ""
        current = env.get(name)
        missing = not current if op.startswith(":") else current is None
        if op.endswith("?"):
            if missing:
                raise MissingVariable(f"required variable {name} is missing a value: {arg}")
            return current or ""
        if op.endswith("-"):
            return arg if missing else current or ""
        if op.endswith("+"):
            return "" if missing else arg
        return current or ""

    return _TOKEN.sub(substitute, value)


def env_example() -> dict[str, str]:
    """docker/.env.example as Compose reads it (KEY=VALUE lines)."""
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def config(env: Mapping[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env)
    return result


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in service.get("environment", {}).items()}


def test_the_interpolation_here_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    cases = {"${SET}": "x", "$SET/$$SET": "x/$SET", "${UNSET:-d}": "d", "${EMPTY:-d}": "d",
             "${EMPTY-d}": "", "${SET:+r}": "r", "${UNSET+r}": "", "${SET:?e}": "x",
             "${EMPTY?e}": ""}
    for text, expected in cases.items():
        assert interpolate(text, env) == expected, text
    for text in ("${UNSET:?msg}", "${EMPTY:?msg}", "${UNSET?msg}"):
        with pytest.raises(MissingVariable, match="msg"):
            interpolate(text, env)


def test_compose_refuses_to_start_without_passwords() -> None:
    unedited = env_example()  # copied but not edited
    assert {name: unedited.get(name) for name in PASSWORDS} == dict.fromkeys(PASSWORDS, "")
    for env in ({}, unedited):  # no docker/.env at all, or an unedited copy
        with pytest.raises(MissingVariable, match=r"docker/\.env\.example"):
            config(env)
    for name in PASSWORDS:  # either one alone is refused too
        with pytest.raises(MissingVariable, match=name):
            config({**unedited, **PASSWORDS, name: ""})
    config({**unedited, **PASSWORDS})  # both set: it starts


def test_every_password_is_required_and_reaches_every_service_that_uses_it() -> None:
    text = COMPOSE_FILE.read_text()
    secret_vars = {name for name in re.findall(r"\$\{(\w+)", text)
                   if re.search("PASSWORD|SECRET", name)}
    assert secret_vars == set(PASSWORDS)
    for name in secret_vars:  # no default anywhere: one `:-` would start with a known value
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses and all(use.startswith(":?") for use in uses), (name, uses)

    services = config({**env_example(), **PASSWORDS})["services"]
    pg, s3 = PASSWORDS["POSTGRES_PASSWORD"], PASSWORDS["S3_SECRET_KEY"]
    assert _environment(services["postgres"])["POSTGRES_PASSWORD"] == pg
    assert _environment(services["temporal"])["POSTGRES_PWD"] == pg
    assert _environment(services["minio"])["MINIO_ROOT_PASSWORD"] == s3
    assert _environment(services["create-bucket"])["S3_SECRET_KEY"] == s3
    for app in ("api", "worker"):
        env = _environment(services[app])
        assert env["DATABASE_URL"] == f"postgres://postgres:{pg}@postgres:5432/assistants"
        assert env["S3_SECRET_KEY"] == s3


def test_only_the_api_and_the_temporal_ui_are_published() -> None:
    services = config({**env_example(), **PASSWORDS})["services"]
    published = {name: service["ports"] for name, service in services.items()
                 if service.get("ports")}
    # The API binds 0.0.0.0, where API keys are required; the UI has no login: loopback.
    assert published == {"api": ["3000:3000"], "temporal-ui": ["127.0.0.1:8233:8080"]}
    # Without docker/.env the defaults are the same.
    bare = config(PASSWORDS)["services"]
    assert {name: s["ports"] for name, s in bare.items() if s.get("ports")} == published


def test_the_host_ports_override_publishes_backing_services_on_loopback_only(
        compose_schema: dict[str, Any]) -> None:
    raw = yaml.safe_load(HOST_PORTS_FILE.read_text())
    errors = list(VALIDATOR(compose_schema).iter_errors(raw))
    assert not errors, [e.message for e in errors]
    main = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert set(raw["services"]) == {"postgres", "redis", "minio", "temporal"} <= set(main)
    overridden = interpolate(raw, env_example())["services"]
    container_ports = {"postgres": {5432}, "redis": {6379}, "minio": {9000, 9001},
                       "temporal": {7233}}
    for name, service in overridden.items():
        assert {p.split(":")[0] for p in service["ports"]} == {"127.0.0.1"}, name
        assert {int(p.rsplit(":", 1)[1]) for p in service["ports"]} == container_ports[name]
    documented = set(env_example())
    used = set(re.findall(r"\$\{(\w+)", HOST_PORTS_FILE.read_text()))
    assert used <= documented, f"not in docker/.env.example: {sorted(used - documented)}"
