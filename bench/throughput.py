"""Completed runs per second at saturation, with nothing lost.

    python -m bench.throughput [--runs 300] [--concurrency 50] [--profile]
                               [--tokens N --token-ms MS]

`--runs` text runs are submitted (POST /threads/runs, one request makes thread, message and
run) with at most `--concurrency` requests in flight, against one API process and one worker
process, zero-latency fake LLM. Then Postgres is polled until every run is terminal, and
Temporal until every run's workflow has closed: a run is `completed` for its clients
before its workflow's last task has run, and work left queued at the end would flatter
the rate.
Throughput = runs / (last workflow closed - first request sent); the rate at which runs
became terminal for clients is reported beside it. "Lost" = runs that are not
`completed` when the time limit is up. The history of a sample run shows the activities
per run and where a run's time goes under load. `--profile` samples the API and the worker
with py-spy during the burst. `--tokens` streams that many tokens per answer, `--token-ms`
apart (a long answer: what each process spends per run while the model streams, and what
the model turn's workflow-task heartbeats add to the history); its report is
`throughput-streamed`, with no target.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime
from typing import Any

import httpx

from bench.harness import (
    TERMINAL_STATUSES,
    BenchStack,
    api_client,
    bench_stack,
    create_assistant,
    fan_out,
    history_summary,
    print_timeline,
    wait_for_statuses,
)
from bench.profiling import print_profile, profile_summary, start_profile
from bench.report import RESULTS, Report, log, summary_ms


async def submit(http: httpx.AsyncClient, assistant: str, content: str) -> tuple[str, float]:
    started = time.perf_counter()
    response = await http.post("/threads/runs", json={
        "assistant_id": assistant,
        "thread": {"messages": [{"role": "user", "content": content}]}})
    response.raise_for_status()
    return str(response.json()["id"]), time.perf_counter() - started


async def closed_at(client: Any, run_ids: list[str], since: float, within: float) -> float:
    """When the last of the runs' workflows closed (epoch seconds, Temporal's clock): waits
    until visibility lists none of them running, then reads their close times."""
    query = (f"WorkflowType = 'AssistantRun' AND StartTime >= "
             f"'{datetime.fromtimestamp(since).astimezone().isoformat()}'")
    deadline = time.perf_counter() + within
    while (await client.count_workflows(f"{query} AND ExecutionStatus = 'Running'")).count:
        if time.perf_counter() > deadline:
            raise TimeoutError("run workflows still running")
        await asyncio.sleep(0.1)
    wanted, last = set(run_ids), 0.0
    async for execution in client.list_workflows(query):
        if execution.id in wanted and execution.close_time is not None:
            wanted.discard(execution.id)
            last = max(last, execution.close_time.timestamp())
    if wanted:
        raise RuntimeError(f"{len(wanted)} run workflows have no close time")
    return last


async def measure(stack: BenchStack, runs: int, concurrency: int, limit: float,
                  profile: bool, tokens: int = 0, token_ms: int = 0) -> Report:
    report = Report("throughput-streamed" if tokens else "throughput")

    def content(i: int) -> str:
        if tokens:
            return f"[[tokens:{tokens}]] [[tokendelay:{token_ms}]]"
        return f"[[reply:answer {i}]]"

    spies = []
    if profile:
        spies = [start_profile(stack.api, f"{report.name}-api", limit),
                 start_profile(stack.worker, f"{report.name}-worker", limit)]
    cpu_before = stack.cpu_seconds()
    async with api_client(stack, connections=concurrency) as http:
        assistant = await create_assistant(http)
        log(f"submitting {runs} runs, {concurrency} in flight ...")
        started, started_epoch = time.perf_counter(), time.time()
        submitted = await fan_out(stack, concurrency, range(runs),
                                  lambda client, i: submit(client, assistant, content(i)))
        all_submitted = time.perf_counter()
        run_ids = [run_id for run_id, _ in submitted]
        log(f"submitted in {all_submitted - started:.1f}s; waiting for all to end ...")
        done_at, counts = await wait_for_statuses(stack, run_ids, TERMINAL_STATUSES, limit)
    for spy in spies:
        if spy is not None:
            spy.stop(60)
    visible = done_at - started
    completed = counts.get("completed", 0)
    client = await stack.temporal()
    elapsed = await closed_at(client, run_ids, started_epoch - 1, limit) - started_epoch
    # Up to the last workflow's close, which includes a few visibility queries of ours.
    cpu = {name: round(used - cpu_before[name], 2)
           for name, used in stack.cpu_seconds().items()}
    history = await history_summary(client, run_ids[len(run_ids) // 2])
    in_temporal = await client.count_workflows(
        "WorkflowType = 'AssistantRun' AND ExecutionStatus = 'Completed'")
    create_ms = summary_ms([seconds for _, seconds in submitted])
    report.add("completed runs/s at saturation", completed / elapsed, "runs/s",
               "" if tokens else ">= 25",
               f"{runs} runs, {concurrency} concurrent creates, 1 API + 1 worker process; "
               "until every run's workflow closed")
    report.add("runs/s until terminal for clients", completed / visible, "runs/s", "",
               "until Postgres had every run completed (workflows still closing)")
    report.add("runs lost (not completed)", runs - completed, "runs", "<= 0",
               f"statuses {counts}")
    report.add("create requests/s (POST /threads/runs)", runs / (all_submitted - started),
               "req/s", "", f"create p50 {create_ms['p50']} ms, p95 {create_ms['p95']} ms")
    report.add("drain time (first create -> last workflow closed)", elapsed, "s")
    report.add("activities per run (task-queue round trips)", history["activities"], "", "",
               "runs started before the local-activity turn, file_search")
    report.add("local activities per run", history["local_activities"], "", "",
               "model_turn (finish_run, record_tool_outputs), inside workflow tasks")
    report.add("workflow tasks per run", history["workflow_tasks"], "")
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        report.add(f"CPU per run: {name}", seconds * 1000 / runs, "ms", "",
                   f"{seconds:.1f} s CPU during the burst")
    report.add("history events per run", history["events"], "")
    report.details = {"cpu_seconds": cpu, "counts": counts,
                      "temporal_completed_workflows": in_temporal.count,
                      "create_ms": create_ms, "sample_history": history, "runs": runs,
                      "concurrency": concurrency, "tokens": tokens, "token_ms": token_ms}
    print(f"\nsample run under load ({run_ids[len(run_ids) // 2]}):")
    print_timeline(history)
    print(f"Temporal counts {in_temporal.count} completed AssistantRun workflows in total "
          "(including warm-up runs)")
    if profile:
        for name in (f"{report.name}-api", f"{report.name}-worker"):
            summary = profile_summary(RESULTS / f"{name}.collapsed.txt")
            report.details[f"profile_{name}"] = summary
            print_profile(name, summary)
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--limit", type=float, default=120.0,
                        help="seconds to wait for every run to end")
    parser.add_argument("--profile", action="store_true", help="py-spy the API and the worker")
    parser.add_argument("--tokens", type=int, default=0, help="tokens per streamed answer")
    parser.add_argument("--token-ms", type=int, default=20, help="delay before each token")
    args = parser.parse_args()
    async with bench_stack() as stack:
        report = await measure(stack, args.runs, args.concurrency, args.limit, args.profile,
                               args.tokens, args.token_ms)
    report.finish()


if __name__ == "__main__":
    asyncio.run(main())
