"""What every benchmark shares: the real stack, its processes, and talking to it.

`BenchStack` starts, in a temporary directory, the embedded Postgres/Redis/S3/Temporal
(ephemeral), the fake LLM (tests/fake_llm.py, as its own process), the API as a real
uvicorn process and one worker process, exactly as `assistants up` runs them. Everything
binds loopback only and dies with the benchmark.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from bench.report import ROOT, log
from core.migrate import upgrade
from launcher.embedded import EmbeddedStack
from launcher.processes import ChildProcess, free_port

TERMINAL_STATUSES = ("completed", "failed", "cancelled", "expired", "incomplete")
WEATHER_TOOL = {"type": "function", "function": {
    "name": "getWeather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


# --- the stack -----------------------------------------------------------------

@dataclass
class BenchStack:
    env: dict[str, str]
    api_url: str  # ends in /v1
    llm_url: str  # the fake LLM's base URL (ends in /v1)
    data_dir: Path
    api: ChildProcess
    worker: ChildProcess
    llm: ChildProcess
    embedded: EmbeddedStack
    embeddings_url: str | None = None  # what the API and worker embed with (None: no vectors)
    embeddings_model: str | None = None

    @property
    def dsn(self) -> str:
        return self.env["DATABASE_URL"].replace("+psycopg", "")

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    def status_counts(self, run_ids: Iterable[str] | None = None) -> dict[str, int]:
        if run_ids is None:
            rows = self.sql("SELECT status, count(*) FROM runs GROUP BY status")
        else:
            rows = self.sql("SELECT status, count(*) FROM runs WHERE id = ANY(%s) GROUP BY status",
                            list(run_ids))
        return {str(status): int(n) for status, n in rows}

    def rss_mb(self, proc: ChildProcess) -> float:
        process = psutil.Process(proc.pid)
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            total += child.memory_info().rss
        return total / 2**20

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each process of the stack, children included."""
        procs = {"api": self.api, "worker": self.worker, "fake_llm": self.llm,
                 **self.embedded.processes}
        totals = {}
        for name, proc in procs.items():
            try:
                process = psutil.Process(proc.pid)
                total = 0.0
                for p in [process, *process.children(recursive=True)]:
                    times = p.cpu_times()
                    total += times.user + times.system
                totals[name] = total
            except psutil.Error:
                totals[name] = float("nan")
        # The load generator (this process, without its children: they are the stack),
        # and what nobody used: a drain rate below saturation with idle CPU is a queue or
        # a lock somewhere, not a lack of cores.
        own = psutil.Process().cpu_times()
        totals["load generator"] = own.user + own.system
        totals["idle (whole machine)"] = psutil.cpu_times().idle
        return totals

    async def temporal(self) -> Any:
        from temporalio.client import Client

        return await Client.connect(self.env["TEMPORAL_ADDRESS"])


def _start_llm(data_dir: Path) -> tuple[ChildProcess, str]:
    port_file = data_dir / "llm.port"
    proc = ChildProcess("fake-llm", [sys.executable, "-m", "bench.llm_server", str(port_file)],
                        data_dir / "logs" / "fake-llm.log", cwd=ROOT)
    proc.wait_until(port_file.exists, 30)
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}/v1"


@asynccontextmanager
async def bench_stack(warmup_runs: int = 5, embeddings_url: str | None = None,
                      embeddings_model: str = "fake-embed") -> AsyncIterator[BenchStack]:
    """The stack, warmed up. `embeddings_url` sets file_search's EMBEDDINGS_URL for the API
    and the worker ("fake": the fake LLM's own hashed bag-of-words `/v1/embeddings`)."""
    data_dir = Path(tempfile.mkdtemp(prefix="assistants-bench-"))
    embedded = EmbeddedStack(data_dir, ephemeral=os.environ.get("BENCH_DURABLE") != "1")
    children: list[ChildProcess] = []
    try:
        started = time.monotonic()
        log(f"starting the embedded stack in {data_dir} ...")
        env = embedded.start({})
        upgrade(env["DATABASE_URL"])
        llm, llm_url = _start_llm(data_dir)
        children.append(llm)
        child_env = {**env, "MODEL_URL": llm_url, "MODEL_API_KEY": "bench",
                     "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING"}
        if embeddings_url == "fake":
            embeddings_url = llm_url
        if embeddings_url:
            child_env.update(EMBEDDINGS_URL=embeddings_url, EMBEDDINGS_MODEL=embeddings_model)
        port = free_port()
        logs = data_dir / "logs"
        api = ChildProcess("api", [sys.executable, "-m", "launcher.cli", "api", "--port",
                                   str(port)], logs / "api.log", env=child_env, cwd=ROOT)
        children.append(api)
        worker = ChildProcess("worker", [sys.executable, "-m", "launcher.cli", "worker"],
                              logs / "worker.log", env=child_env, cwd=ROOT)
        children.append(worker)
        api.wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health",
                                         timeout=2).status_code == 200, 90)
        stack = BenchStack(env, f"http://127.0.0.1:{port}/v1", llm_url, data_dir, api, worker,
                           llm, embedded, embeddings_url,
                           embeddings_model if embeddings_url else None)
        async with api_client(stack) as http:
            assistant = await create_assistant(http)
            for _ in range(warmup_runs):  # also proves the worker polls
                await run_to_end(http, assistant, "[[reply:warm up]]", within=60)
        log(f"stack up in {time.monotonic() - started:.1f}s (API :{port}, worker pid "
            f"{worker.pid}, fake LLM {llm_url})")
        yield stack
    finally:
        for child in reversed(children):
            child.stop()
        embedded.stop()
        if os.environ.get("BENCH_KEEP_DATA"):
            log(f"kept {data_dir} (logs in {data_dir / 'logs'})")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


# --- talking to the API -----------------------------------------------------------

@asynccontextmanager
async def api_client(stack: BenchStack, connections: int = 100) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=stack.api_url, limits=limits,
                                 timeout=httpx.Timeout(60.0)) as http:
        yield http


async def create_assistant(http: httpx.AsyncClient, tools: list[Any] | None = None) -> str:
    response = await http.post("/assistants", json={"model": "fake-model", "tools": tools or []})
    response.raise_for_status()
    return str(response.json()["id"])


async def create_thread(http: httpx.AsyncClient, content: str) -> str:
    response = await http.post("/threads", json={"messages": [{"role": "user",
                                                                "content": content}]})
    response.raise_for_status()
    return str(response.json()["id"])


@dataclass
class SseEvent:
    at: float  # time.perf_counter() when the event's data line arrived
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


async def sse(http: httpx.AsyncClient, method: str, url: str, body: Any = None,
              stop: Iterable[str] = ("done",)) -> AsyncIterator[SseEvent]:
    """The events of an SSE response, as they arrive, until one named in `stop` (included)."""
    stop = set(stop)
    async with http.stream(method, url, json=body) as response:
        response.raise_for_status()
        event = "message"
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                item = SseEvent(time.perf_counter(), event, line[5:].strip())
                yield item
                if event in stop:
                    return


async def run_to_end(http: httpx.AsyncClient, assistant_id: str, content: str,
                     within: float = 60.0) -> dict[str, Any]:
    """Create a thread and a streamed run; the final run object (any stream end)."""
    thread_id = await create_thread(http, content)

    async def follow() -> dict[str, Any]:
        last: dict[str, Any] = {}
        async for item in sse(http, "POST", f"/threads/{thread_id}/runs",
                              {"assistant_id": assistant_id, "stream": True}):
            if item.event.startswith("thread.run."):
                last = item.json()
        return last

    return await asyncio.wait_for(follow(), within)


async def wait_for_statuses(stack: BenchStack, run_ids: list[str], statuses: Iterable[str],
                            within: float, every: float = 0.05) -> tuple[float, dict[str, int]]:
    """Poll Postgres until every run is in one of `statuses`; (when, counts)."""
    wanted = set(statuses)
    deadline = time.perf_counter() + within
    counts: dict[str, int] = {}
    while time.perf_counter() < deadline:
        counts = await asyncio.to_thread(stack.status_counts, run_ids)
        if sum(n for s, n in counts.items() if s in wanted) >= len(run_ids):
            return time.perf_counter(), counts
        await asyncio.sleep(every)
    return time.perf_counter(), counts


async def fan_out(stack: BenchStack, concurrency: int, items: Iterable[Any],
                  job: Callable[[httpx.AsyncClient, Any], Awaitable[Any]]) -> list[Any]:
    """`job(client, item)` for every item, `concurrency` at a time; results in order.

    Each of the `concurrency` loops owns its own one-connection client: one httpx client
    shared by dozens of concurrent requests collapses on its pool lock (measured here:
    ~580 req/s at 4 in flight, ~60 req/s at 32), which would benchmark the client.
    """
    queue = list(enumerate(items))
    results: list[Any] = [None] * len(queue)
    position = iter(queue)

    async def loop() -> None:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=httpx.Timeout(120.0)) as http:
            for index, item in position:
                results[index] = await job(http, item)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return results


# --- Temporal history: where a run's time goes ------------------------------------

async def history_summary(client: Any, workflow_id: str) -> dict[str, Any]:
    """Counts of the run's history events and a timeline (ms from workflow start)."""
    from temporalio.api.enums.v1 import EventType

    events = [e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()]
    start = events[0].event_time.ToDatetime()
    timeline = []
    counts: dict[str, int] = {}
    for event in events:
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        counts[name] = counts.get(name, 0) + 1
        detail = ""
        if event.HasField("activity_task_scheduled_event_attributes"):
            detail = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.HasField("marker_recorded_event_attributes"):
            detail = "local activity"
        ms = (event.event_time.ToDatetime() - start).total_seconds() * 1000
        timeline.append({"ms": round(ms, 1), "event": name, "detail": detail})
    return {
        "events": len(events),
        "activities": counts.get("ACTIVITY_TASK_SCHEDULED", 0),
        "local_activities": counts.get("MARKER_RECORDED", 0),
        "workflow_tasks": counts.get("WORKFLOW_TASK_SCHEDULED", 0),
        "counts": counts,
        "timeline": timeline,
    }


def print_timeline(summary: dict[str, Any]) -> None:
    print(f"  history: {summary['events']} events, {summary['workflow_tasks']} workflow tasks, "
          f"{summary['activities']} activities, {summary['local_activities']} local activities")
    for row in summary["timeline"]:
        print(f"    {row['ms']:8.1f} ms  {row['event']:<34} {row['detail']}")
