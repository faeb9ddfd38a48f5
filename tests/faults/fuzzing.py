"""Schemathesis against a running API, two ways: an in-process loop over an OpenAPI document
(`fuzz`, the app's own) and schemathesis' CLI (`st_run`, OpenAI's document).

Every response is checked for what schemathesis calls `not_a_server_error` (no 5xx, no hang or
dropped connection) and, for a 4xx, OpenAI's error envelope `{"error": {"message", "type",
"param", "code"}}` (never FastAPI's `{"detail"}`; schemathesis_hooks.py for the CLI). Problems
are collected, not raised, so one run reports all of them with a curl line each.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import requests
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.faults.helpers import is_envelope

REPOSITORY = Path(__file__).parents[2]
# OpenAI's public Assistants-family OpenAPI document (MIT), vendored: see its README.
OPENAI_SPEC = REPOSITORY / "tests" / "openai_spec" / "assistants-openapi.yaml"


def real_ids(base_url: str) -> dict[str, str]:
    """Existing objects, so generated requests also reach past the id checks."""
    with httpx.Client(base_url=f"{base_url}/v1", timeout=30) as http:
        assistant = http.post("/assistants", json={"model": "fake-model"}).json()
        thread = http.post("/threads", json={"messages": [
            {"role": "user", "content": "fuzz"}]}).json()
        message = http.get(f"/threads/{thread['id']}/messages").json()["data"][0]
        run_thread = http.post("/threads", json={}).json()
        run = http.post(f"/threads/{run_thread['id']}/runs",
                        json={"assistant_id": assistant["id"]}).json()
        file = http.post("/files", data={"purpose": "assistants"},
                         files={"file": ("a.txt", b"fuzz text", "text/plain")}).json()
        store = http.post("/vector_stores", json={"name": "fuzz"}).json()
        batch = http.post(f"/vector_stores/{store['id']}/file_batches",
                          json={"file_ids": [file["id"]]}).json()
        spare_thread = http.post("/threads", json={}).json()
    assert "id" in run and "id" in batch, (run, batch)
    return {"assistant_id": assistant["id"], "thread_id": thread["id"],
            "message_id": message["id"], "run_id": run["id"], "file_id": file["id"],
            "vector_store_id": store["id"], "batch_id": batch["id"],
            # Not path parameter names: the thread holding the run, one without any.
            "run_thread_id": run_thread["id"], "spare_thread_id": spare_thread["id"]}


def problem_of(label: str, response: requests.Response) -> str | None:
    if response.status_code >= 500:
        return f"{label}: {response.status_code} {response.text[:300]}"
    if 400 <= response.status_code < 500:
        try:
            body = response.json()
        except ValueError:
            return f"{label}: {response.status_code} non-JSON body {response.text[:200]!r}"
        if not is_envelope(body):
            return f"{label}: {response.status_code} not the OpenAI envelope: {body!r:.300}"
    return None


def _fuzz(operation: Any, strategy: Any, base_url: str, max_examples: int,
          problems: list[str]) -> None:
    session = requests.Session()

    @hypothesis_settings(max_examples=max_examples, deadline=None, database=None,
                         phases=[Phase.explicit, Phase.generate],  # no shrinking: we collect
                         suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, session=session, timeout=15)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL,
                UnicodeError, ValueError):
            return  # the HTTP client refused to send it: nothing reached the server
        except requests.exceptions.RequestException as error:  # a hang or a dropped socket
            problems.append(f"{operation.label}: {type(error).__name__}: {error}"
                            f"\n  {case.as_curl_command()}")
            return
        problem = problem_of(operation.label, response)
        if problem:
            problems.append(f"{problem}\n  {case.as_curl_command()}")

    with contextlib.suppress(Unsatisfiable):  # e.g. no negative variant without any input
        check()


def fuzz(schema: Any, base_url: str, known_ids: dict[str, str], max_examples: int,
         skipped: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """(problems, labels of the operations fuzzed): each operation not in `skipped` with
    `max_examples` negative and `max_examples` positive cases, half of the positive ones on
    the objects of `known_ids`. Deletes go last, so the known objects live until then."""
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    problems: list[str] = []
    fuzzed: list[str] = []
    for operation in operations:
        if operation.label in skipped:
            continue
        names = {p.name for p in operation.path_parameters}
        known = {k: v for k, v in known_ids.items() if k in names}
        strategies = [operation.as_strategy(GenerationMode.NEGATIVE)]
        positive = operation.as_strategy(GenerationMode.POSITIVE)
        if known:
            positive = st.one_of(positive, operation.as_strategy(
                GenerationMode.POSITIVE, path_parameters=known))
        strategies.append(positive)
        for strategy in strategies:
            _fuzz(operation, strategy, base_url, max_examples, problems)
        fuzzed.append(operation.label)
    return problems, fuzzed


def st_run(spec: Path, base_url: str, ids: dict[str, str], victims: dict[str, str],
           max_examples: int, not_served: Iterable[str], workdir: Path) -> tuple[int, str]:
    """`st run` over `spec` (schemathesis' examples, coverage and fuzzing phases), checking
    `not_a_server_error` and `openai_error_envelope`: (exit status, output).

    The coverage phase is what this adds over the in-process loop above: for every operation
    it sends each property with each wrong type and each boundary value, deterministically
    (it found a search filter whose `type` was an object). Path ids (and the bodies' ids a
    run or a vector-store file needs) are fixed to real objects of `ids`, so requests get
    past the 404s; deletes get the objects of `victims`, so `ids` live through the run.
    One worker: with two threads, Hypothesis' `ast.parse` calls raced here on CPython 3.11.7
    (a spurious SystemError "AST constructor recursion depth mismatch", python/cpython#106905),
    and the API on the same cores is the bottleneck anyway."""
    config = f"""
base-url = {json.dumps(base_url)}
hooks = {json.dumps(str(Path(__file__).with_name("schemathesis_hooks.py")))}
workers = 1
continue-on-failure = true
request-timeout = 15
warnings = false

[generation]
max-examples = {max_examples}
no-shrink = true

[phases.stateful]
enabled = false

[checks]
enabled = false
not_a_server_error.enabled = true
openai_error_envelope.enabled = true
"""
    skipped = sorted(not_served)
    if skipped:
        config += f"\n[[operations]]\ninclude-name = {json.dumps(skipped)}\nenabled = false\n"
    for selector, parameters in _fixed_parameters(ids, victims):
        config += f"\n[[operations]]\n{selector}\nparameters = {_toml_table(parameters)}\n"
    (workdir / "schemathesis.toml").write_text(config)
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", "schemathesis.toml",
         "run", str(spec)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False)
    return result.returncode, result.stdout + result.stderr


def _fixed_parameters(ids: dict[str, str],
                      victims: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    """`[[operations]]` selectors and their fixed parameters. Schemathesis takes `parameters`
    whole from the first block that matches an operation, so each block is complete."""
    def common(of: dict[str, str]) -> dict[str, str]:
        return {name: of[name] for name in ("assistant_id", "thread_id", "message_id",
                                            "file_id", "vector_store_id", "batch_id")}

    return [
        # A run's operations: on the thread that holds it.
        (f"include-path-regex = {json.dumps(RUN_PATHS)}",
         {"thread_id": ids["run_thread_id"], "run_id": ids["run_id"]}),
        # New runs on a thread without one (the first one takes it) and in new threads.
        ('include-name = "POST /threads/{thread_id}/runs"',
         {"thread_id": ids["spare_thread_id"], "body.assistant_id": ids["assistant_id"]}),
        ('include-name = "POST /threads/runs"', {"body.assistant_id": ids["assistant_id"]}),
        ('include-name = "POST /vector_stores/{vector_store_id}/files"',
         {"vector_store_id": ids["vector_store_id"], "body.file_id": ids["file_id"]}),
        ('include-method = "DELETE"', common(victims)),
        ('exclude-method = "DELETE"', common(ids)),
    ]


# The operations on one run: their thread must be the run's.
RUN_PATHS = r"^/threads/\{thread_id\}/runs/\{run_id\}"


def _toml_table(values: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in values.items()) + " }"
