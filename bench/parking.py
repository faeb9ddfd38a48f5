"""Many runs parked in requires_action: what they cost, and that all of them resume.

    python -m bench.parking [--runs 300] [--concurrency 50]     (--runs 10000: the full target)

`--runs` function-calling runs are created (POST /threads/runs) and left waiting for tool
outputs. Measured while they wait: the worker's RSS (psutil), the API's RSS, the Postgres
database size and the Temporal dev server's SQLite files. Then tool outputs are submitted to
a sample one at a time (submit -> completed latency of a parked run), then to all the others
with bounded concurrency, and every run must end `completed` ("all resumable").
The worker caches at most 1000 workflows (Temporal's default), so beyond that a resumed run
is replayed from its history first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import httpx

from bench.harness import (
    WEATHER_TOOL,
    BenchStack,
    api_client,
    bench_stack,
    create_assistant,
    fan_out,
    wait_for_statuses,
)
from bench.report import Report, log, summary_ms

CALL = '[[call:getWeather {"city": "Paris"}]]'


def _sizes(stack: BenchStack) -> dict[str, float]:
    pg = stack.sql("SELECT pg_database_size(current_database())")[0][0]
    temporal = sum(p.stat().st_size for p in Path(stack.data_dir).glob("temporal.db*"))
    return {"worker_rss_mb": round(stack.rss_mb(stack.worker), 1),
            "api_rss_mb": round(stack.rss_mb(stack.api), 1),
            "postgres_mb": round(pg / 2**20, 1), "temporal_sqlite_mb": round(temporal / 2**20, 1)}


async def create(http: httpx.AsyncClient, assistant: str) -> str:
    response = await http.post("/threads/runs", json={
        "assistant_id": assistant, "thread": {"messages": [{"role": "user", "content": CALL}]}})
    response.raise_for_status()
    return str(response.json()["id"])


async def submit(http: httpx.AsyncClient, thread_id: str, run_id: str, call_ids: list[str]) -> None:
    response = await http.post(f"/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
                               json={"tool_outputs": [{"tool_call_id": c, "output": "sunny"}
                                                      for c in call_ids]})
    response.raise_for_status()


async def until_completed(http: httpx.AsyncClient, thread_id: str, run_id: str) -> None:
    while True:
        run = (await http.get(f"/threads/{thread_id}/runs/{run_id}")).json()
        if run["status"] not in ("queued", "in_progress", "requires_action"):
            assert run["status"] == "completed", run["status"]
            return
        await asyncio.sleep(0.01)


async def measure(stack: BenchStack, runs: int, concurrency: int, sample: int,
                  limit: float) -> Report:
    report = Report("parking")
    before = _sizes(stack)
    async with api_client(stack, connections=concurrency) as http:
        assistant = await create_assistant(http, [WEATHER_TOOL])
        log(f"parking {runs} runs ({concurrency} creates in flight) ...")
        started = time.perf_counter()
        run_ids = await fan_out(stack, concurrency, range(runs),
                                lambda client, _: create(client, assistant))
        parked_at, counts = await wait_for_statuses(stack, run_ids, ["requires_action"], limit,
                                                    every=0.5)
        park_seconds = parked_at - started
        parked = counts.get("requires_action", 0)
        log(f"{parked}/{runs} parked in {park_seconds:.1f}s; settling 3s, then measuring")
        await asyncio.sleep(3)
        while_parked = _sizes(stack)
        rows = stack.sql("SELECT id, thread_id, required_action FROM runs WHERE id = ANY(%s) "
                         "AND status = 'requires_action'", run_ids)
        waiting = [(str(r), str(t), [c["id"] for c in (a if isinstance(a, dict) else json.loads(a))
                                     ["submit_tool_outputs"]["tool_calls"]])
                   for r, t, a in rows]
        log(f"resuming a sample of {sample} one by one ...")
        latencies = []
        for run_id, thread_id, calls in waiting[:sample]:
            t0 = time.perf_counter()
            await submit(http, thread_id, run_id, calls)
            await until_completed(http, thread_id, run_id)
            latencies.append(time.perf_counter() - t0)
        log(f"resuming the other {len(waiting) - sample} ({concurrency} in flight) ...")
        resumed = time.perf_counter()
        await fan_out(stack, concurrency, waiting[sample:],
                      lambda client, w: submit(client, w[1], w[0], w[2]))
        done_at, final = await wait_for_statuses(
            stack, run_ids, ["completed", "failed", "cancelled", "expired", "incomplete"], limit,
            every=0.5)
        resume_seconds = done_at - resumed
    after = _sizes(stack)
    completed = final.get("completed", 0)
    per_run = {k: (while_parked[k] - before[k]) * 1024 / max(1, parked)
               for k in ("worker_rss_mb", "postgres_mb", "temporal_sqlite_mb")}
    sample_ms = summary_ms(latencies)
    report.add("runs parked in requires_action", parked, "runs", f">= {runs}",
               f"parked in {park_seconds:.0f}s ({parked / park_seconds:.1f} runs/s)")
    report.add("worker RSS while parked", while_parked["worker_rss_mb"], "MB", "",
               f"{before['worker_rss_mb']} MB before; +{per_run['worker_rss_mb']:.1f} KB/run")
    report.add("API RSS while parked", while_parked["api_rss_mb"], "MB", "",
               f"{before['api_rss_mb']} MB before")
    report.add("Postgres database size while parked", while_parked["postgres_mb"], "MB", "",
               f"{before['postgres_mb']} MB before; +{per_run['postgres_mb']:.1f} KB/run")
    report.add("Temporal SQLite size while parked", while_parked["temporal_sqlite_mb"], "MB", "",
               f"{before['temporal_sqlite_mb']} MB before; "
               f"+{per_run['temporal_sqlite_mb']:.1f} KB/run")
    report.add("parked run: submit -> completed, p50", sample_ms["p50"], "ms", "",
               f"p95 {sample_ms['p95']} ms, {sample} runs one at a time")
    report.add("all resumable: completed after submit", completed, "runs", f">= {runs}",
               f"statuses {final}")
    report.add("resume throughput (submit all -> all completed)",
               (completed - sample) / resume_seconds if resume_seconds else 0, "runs/s")
    report.add("worker RSS after all completed", after["worker_rss_mb"], "MB")
    report.details = {"before": before, "while_parked": while_parked, "after": after,
                      "per_run_kb": per_run, "sample_submit_ms": sample_ms, "runs": runs,
                      "park_seconds": park_seconds, "resume_seconds": resume_seconds}
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--sample", type=int, default=20)
    parser.add_argument("--limit", type=float, default=600.0,
                        help="seconds to wait for parking, and again for completion")
    args = parser.parse_args()
    # 10,000 runs take longer to park than OpenAI's 10-minute run expiry: parked runs
    # would expire before they are resumed. A day, unless RUN_EXPIRY_SECONDS says otherwise.
    os.environ.setdefault("RUN_EXPIRY_SECONDS", str(24 * 3600))
    async with bench_stack(warmup_runs=2) as stack:
        report = await measure(stack, args.runs, args.concurrency, args.sample, args.limit)
    report.finish()


if __name__ == "__main__":
    asyncio.run(main())
