"""Create -> completed latency of a run, against the floor of Temporal itself.

    python -m bench.run_latency [--runs 40]

Zero-latency fake LLM. Each measured kind is run once per round, interleaved, so noise from
other work on the machine hits every kind alike:
  text/SSE   POST /threads/{id}/runs {"stream": true} until `thread.run.completed` arrives
  text/poll  the SDK's runs.create_and_poll(poll_interval_ms=20; --poll-ms)
  fn/SSE     create (stream) until requires_action, submit_tool_outputs (stream) until completed
  fn/poll    create_and_poll, then submit_tool_outputs_and_poll (same poll interval)
  floor      a bare Temporal workflow with one activity, its own worker in this process, on
             the same Temporal server (start_workflow + result)
  floor/fn   the floor of a function round trip: activity, wait for an update, activity
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

import openai
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.harness import (
    WEATHER_TOOL,
    BenchStack,
    api_client,
    bench_stack,
    create_assistant,
    create_thread,
    history_summary,
    print_timeline,
    sse,
)
from bench.report import Report, log, summary_ms

FLOOR_QUEUE = "bench-floor"
TEXT = "[[reply:hello there]]"
CALL = '[[call:getWeather {"city": "Paris"}]]'
POLL_MS = 20  # the SDK poll interval (--poll-ms)


# --- the floor: Temporal alone ------------------------------------------------------

@activity.defn(name="bench_noop")
async def noop_activity(value: str) -> str:
    return value


@workflow.defn(name="BenchFloor")
class FloorWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        return str(await workflow.execute_activity(
            noop_activity, value, start_to_close_timeout=timedelta(seconds=10)))


@workflow.defn(name="BenchFloorRoundTrip")
class FloorRoundTripWorkflow:
    def __init__(self) -> None:
        self._first_done = False
        self._outputs: str | None = None

    @workflow.run
    async def run(self, value: str) -> str:
        await workflow.execute_activity(noop_activity, value,
                                        start_to_close_timeout=timedelta(seconds=10))
        self._first_done = True
        await workflow.wait_condition(lambda: self._outputs is not None)
        return str(await workflow.execute_activity(
            noop_activity, self._outputs, start_to_close_timeout=timedelta(seconds=10)))

    @workflow.update(name="outputs")
    async def outputs(self, value: str) -> str:
        await workflow.wait_condition(lambda: self._first_done)
        self._outputs = value
        return value


async def floor_once(client: Client) -> float:
    started = time.perf_counter()
    await client.execute_workflow(FloorWorkflow.run, "x", id=f"floor-{uuid.uuid4().hex}",
                                  task_queue=FLOOR_QUEUE)
    return time.perf_counter() - started


async def floor_round_trip_once(client: Client) -> float:
    started = time.perf_counter()
    handle = await client.start_workflow(FloorRoundTripWorkflow.run, "x",
                                         id=f"floor-rt-{uuid.uuid4().hex}",
                                         task_queue=FLOOR_QUEUE)
    await handle.execute_update(FloorRoundTripWorkflow.outputs, "y")
    await handle.result()
    return time.perf_counter() - started


# --- the product ---------------------------------------------------------------------

async def text_sse(http: Any, assistant: str) -> tuple[float, str]:
    thread = await create_thread(http, TEXT)
    started = time.perf_counter()
    run_id = ""
    async for item in sse(http, "POST", f"/threads/{thread}/runs",
                          {"assistant_id": assistant, "stream": True}):
        if item.event == "thread.run.created":
            run_id = item.json()["id"]
        if item.event == "thread.run.completed":
            return item.at - started, run_id
    raise RuntimeError("the stream ended without thread.run.completed")


async def text_poll(sdk: openai.AsyncOpenAI, http: Any, assistant: str) -> float:
    thread = await create_thread(http, TEXT)
    started = time.perf_counter()
    run = await sdk.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant,
                                                      poll_interval_ms=POLL_MS)
    assert run.status == "completed", run.status
    return time.perf_counter() - started


async def function_sse(http: Any, assistant: str) -> tuple[float, str]:
    thread = await create_thread(http, CALL)
    started = time.perf_counter()
    run: dict[str, Any] = {}
    async for item in sse(http, "POST", f"/threads/{thread}/runs",
                          {"assistant_id": assistant, "stream": True}):
        if item.event == "thread.run.requires_action":
            run = item.json()
    calls = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    outputs = [{"tool_call_id": c["id"], "output": "sunny"} for c in calls]
    async for item in sse(http, "POST", f"/threads/{thread}/runs/{run['id']}/submit_tool_outputs",
                          {"tool_outputs": outputs, "stream": True}):
        if item.event == "thread.run.completed":
            return item.at - started, run["id"]
    raise RuntimeError("the stream ended without thread.run.completed")


async def function_poll(sdk: openai.AsyncOpenAI, http: Any, assistant: str) -> float:
    thread = await create_thread(http, CALL)
    started = time.perf_counter()
    run = await sdk.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant,
                                                      poll_interval_ms=POLL_MS)
    assert run.status == "requires_action" and run.required_action is not None, run.status
    calls = run.required_action.submit_tool_outputs.tool_calls
    run = await sdk.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread, run_id=run.id, poll_interval_ms=POLL_MS,
        tool_outputs=[{"tool_call_id": c.id, "output": "sunny"} for c in calls])
    assert run.status == "completed", run.status
    return time.perf_counter() - started


async def measure(stack: BenchStack, rounds: int) -> Report:
    report = Report("run_latency")
    client = await stack.temporal()
    floor_worker = Worker(client, task_queue=FLOOR_QUEUE,
                          workflows=[FloorWorkflow, FloorRoundTripWorkflow],
                          activities=[noop_activity],
                          workflow_runner=UnsandboxedWorkflowRunner())
    samples: dict[str, list[float]] = {k: [] for k in (
        "text_sse", "text_poll", "fn_sse", "fn_poll", "floor", "floor_fn")}
    sample_runs: dict[str, str] = {}
    async with floor_worker, api_client(stack) as http:
        sdk = openai.AsyncOpenAI(base_url=stack.api_url, api_key="bench", http_client=http,
                                 max_retries=0)
        assistant = await create_assistant(http, [WEATHER_TOOL])
        for _ in range(3):  # warm the floor worker and both paths
            await floor_once(client)
            await floor_round_trip_once(client)
            await function_sse(http, assistant)
        log(f"measuring {rounds} rounds ...")
        for i in range(rounds):
            samples["floor"].append(await floor_once(client))
            seconds, run_id = await text_sse(http, assistant)
            samples["text_sse"].append(seconds)
            sample_runs["text"] = run_id
            samples["text_poll"].append(await text_poll(sdk, http, assistant))
            samples["floor_fn"].append(await floor_round_trip_once(client))
            seconds, run_id = await function_sse(http, assistant)
            samples["fn_sse"].append(seconds)
            sample_runs["fn"] = run_id
            samples["fn_poll"].append(await function_poll(sdk, http, assistant))
            if (i + 1) % 10 == 0:
                log(f"  {i + 1}/{rounds}")
        histories = {kind: await history_summary(client, run_id)
                     for kind, run_id in sample_runs.items()}
    stats = {kind: summary_ms(values) for kind, values in samples.items()}
    floor, floor_fn = stats["floor"]["p50"], stats["floor_fn"]["p50"]
    report.add("text run p50 (SSE terminal event)", stats["text_sse"]["p50"], "ms", "<= 120",
               f"floor 1-activity workflow p50 {floor} ms")
    report.add("text run p95 (SSE)", stats["text_sse"]["p95"], "ms", "",
               f"floor p95 {stats['floor']['p95']} ms")
    report.add(f"text run p50 (SDK poll, {POLL_MS} ms)", stats["text_poll"]["p50"], "ms",
               "<= 120",
               f"floor p50 {floor} ms")
    report.add("text run p95 (SDK poll)", stats["text_poll"]["p95"], "ms")
    report.add("function round trip p50 (SSE)", stats["fn_sse"]["p50"], "ms", "<= 250",
               f"floor act+update+act p50 {floor_fn} ms")
    report.add("function round trip p95 (SSE)", stats["fn_sse"]["p95"], "ms", "",
               f"floor p95 {stats['floor_fn']['p95']} ms")
    report.add("function round trip p50 (SDK poll)", stats["fn_poll"]["p50"], "ms", "<= 250",
               f"floor p50 {floor_fn} ms")
    report.add("function round trip p95 (SDK poll)", stats["fn_poll"]["p95"], "ms")
    report.add("floor: workflow + 1 activity p50", floor, "ms", "", "bare Temporal, same server")
    report.add("floor: act + update + act p50", floor_fn, "ms", "", "bare Temporal, same server")
    report.add("text run p50 / floor p50", stats["text_sse"]["p50"] / floor, "x")
    report.details = {"stats_ms": stats, "histories": histories, "rounds": rounds,
                      "llm_latency": "zero (fake LLM, no delay directives)"}
    for kind, summary in histories.items():
        print(f"\nsample {kind} run {sample_runs[kind]}:")
        print_timeline(summary)
    print("\nlatency (ms): " + "; ".join(
        f"{k} p50 {v['p50']} p95 {v['p95']} min {v['min']}" for k, v in stats.items()))
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="rounds (each kind once per round)")
    parser.add_argument("--poll-ms", type=int, default=POLL_MS, help="SDK poll interval")
    args = parser.parse_args()
    globals()["POLL_MS"] = args.poll_ms
    async with bench_stack() as stack:
        report = await measure(stack, args.runs)
    report.finish()


if __name__ == "__main__":
    asyncio.run(main())
