"""What every benchmark shares: the real stack, the processes, measuring and reporting.

`BenchStack` starts, in a temporary directory, the embedded Postgres/Redis/S3/Temporal
(ephemeral), the fake LLM (tests/fake_llm.py, as its own process), the API as a real
uvicorn process and one worker process, exactly as `assistants up` runs them. Everything
binds loopback only and dies with the benchmark.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from core.migrate import upgrade
from launcher.embedded import EmbeddedStack
from launcher.processes import ChildProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TERMINAL_STATUSES = ("completed", "failed", "cancelled", "expired", "incomplete")
WEATHER_TOOL = {"type": "function", "function": {
    "name": "getWeather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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
    embedded = EmbeddedStack(data_dir, ephemeral=True)
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


# --- numbers and reports ----------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50": round(percentile(ms, 50), 1), "p95": round(percentile(ms, 95), 1),
            "mean": round(statistics.fmean(ms), 1) if ms else float("nan"),
            "min": round(min(ms), 1) if ms else float("nan"),
            "max": round(max(ms), 1) if ms else float("nan")}


@dataclass
class Row:
    metric: str
    result: float
    unit: str
    target: str = ""  # e.g. "<= 120"
    compared_to: str = ""
    ok: bool | None = None

    def shown(self) -> str:
        value = f"{self.result:,.2f}" if abs(self.result) < 10 else f"{self.result:,.0f}"
        return f"{value} {self.unit}".strip()


def cpu_probe_ms(iterations: int = 2_000_000) -> float:
    """Milliseconds for a fixed pure-Python loop, best of 3. The 2-core VMs these numbers
    come from change speed with their neighbours (a 10M-iteration loop took 0.9 to 1.8 s
    within minutes on 2026-11-26), so every report says how fast the machine was."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(iterations):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


@dataclass
class Report:
    name: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    load_before: tuple[float, float, float] = field(default_factory=os.getloadavg)
    cpu_probe_before: float = field(default_factory=cpu_probe_ms)

    def add(self, metric: str, result: float, unit: str, target: str = "",
            compared_to: str = "") -> Row:
        ok = None
        if target:
            op, _, bound = target.partition(" ")
            limit = float(bound)
            ok = result <= limit if op == "<=" else result >= limit
        row = Row(metric, result, unit, target, compared_to, ok)
        self.rows.append(row)
        return row

    def finish(self) -> Path:
        cores = os.cpu_count() or 0
        cpu_probe_after = cpu_probe_ms()
        headers = ("metric", "result", "target", "met", "compared to")
        table = [(r.metric, r.shown(), f"{r.target} {r.unit}" if r.target else "",
                  "" if r.ok is None else ("yes" if r.ok else "NO"), r.compared_to)
                 for r in self.rows]
        widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
        print()
        print(f"== {self.name}  ({cores} cores, load avg before {self.load_before[0]:.2f}, "
              f"after {os.getloadavg()[0]:.2f}; CPU probe {self.cpu_probe_before:.0f} ms "
              f"before, {cpu_probe_after:.0f} after: lower is a faster machine)")
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        print("  ".join("-" * w for w in widths))
        for t in table:
            print("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)))
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        payload = {
            "benchmark": self.name,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "duration_seconds": round(time.time() - self.started, 1),
            "machine": {"cores": cores, "platform": platform.platform(),
                        "python": platform.python_version(),
                        "load_avg_before": self.load_before, "load_avg_after": os.getloadavg(),
                        "cpu_probe_ms_before": self.cpu_probe_before,
                        "cpu_probe_ms_after": cpu_probe_after},
            "git": _git_rev(),
            "results": [r.__dict__ for r in self.rows],
            "details": self.details,
        }
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"\nwrote {path.relative_to(ROOT)}")
        return path


def _git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --- profiling ----------------------------------------------------------------------

def start_profile(proc: ChildProcess, name: str, seconds: float) -> ChildProcess | None:
    """py-spy (if installed) on a child for `seconds` or until stopped (SIGINT, so it still
    writes its output); collapsed stacks in bench/results/."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        log("py-spy is not installed (pip install py-spy); not profiling")
        return None
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.collapsed.txt"
    return ChildProcess(f"py-spy-{name}", [spy, "record", "--pid", str(proc.pid), "--format", "raw",
                                           "--rate", "200", "--duration", str(int(seconds)),
                                           "--nonblocking", "--output", str(out)],
                        RESULTS / f"{name}.py-spy.log", stop_signal=signal.SIGINT)


OUR_PACKAGES = ("api", "core", "activities", "workflows", "launcher", "worker.py", "bench")
# Innermost frames that mean "waiting", not working (py-spy's idle detection misses these).
IDLE_LEAVES = ("Condition.wait", "Queue.get", "Runner.run", "BaseSelector.select", "select",
               "Event.wait", "_worker")


def _package(path: str) -> str:
    """py-spy's short path as a package: `sqlalchemy`, `temporalio`, `stdlib:asyncio`, ours."""
    top = path.split("/", 1)[0]
    if top in OUR_PACKAGES:
        return path
    if "/" not in path or top in ("asyncio", "concurrent", "json", "importlib", "email"):
        return "stdlib:" + top.removesuffix(".py")
    return top


def profile_summary(collapsed: Path, limit: int = 12) -> dict[str, list[tuple[str, float]]]:
    """From py-spy's raw output: % of working samples (idle waits dropped) by the package of
    the innermost frame (self time), and by our own functions anywhere on the stack."""
    if not collapsed.exists():
        return {}
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    samples = idle = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f.endswith(")") and " (" in f]
        if not frames or frames[-1].split(" (")[0] in IDLE_LEAVES:
            idle += n
            continue
        samples += n
        leaf = _package(frames[-1].rsplit(" (", 1)[1].rsplit(":", 1)[0])
        own[leaf] = own.get(leaf, 0) + n
        seen = set()
        for frame in frames:
            function, _, where = frame.rpartition(" (")
            path = where.rsplit(":", 1)[0]
            if path.split("/", 1)[0] in OUR_PACKAGES and function != "<module>":
                key = f"{path}:{function}"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] = inclusive.get(key, 0) + n
            elif function in ("SandboxedWorkflowRunner.create_instance",
                              "_Instance._run_code"):
                key = f"temporalio sandbox: {function}"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] = inclusive.get(key, 0) + n

    def ranked(totals: dict[str, int]) -> list[tuple[str, float]]:
        best = sorted(totals.items(), key=lambda kv: -kv[1])[:limit]
        return [(name, round(100 * n / samples, 1)) for name, n in best]

    return {"samples": [("working samples", float(samples)), ("idle samples", float(idle))],
            "self_by_package": ranked(own),
            "inclusive_our_functions": ranked(inclusive)} if samples else {}


def print_profile(title: str, summary: dict[str, list[tuple[str, float]]]) -> None:
    if not summary:
        return
    print(f"\n  profile of {title} ({summary['samples'][0][1]:.0f} non-idle thread samples at "
          "200 Hz)")
    print("    self time by package:          " + ", ".join(
        f"{name} {pct}%" for name, pct in summary["self_by_package"]))
    print("    inclusive, our functions:")
    for name, pct in summary["inclusive_our_functions"]:
        print(f"      {pct:5.1f}%  {name}")
