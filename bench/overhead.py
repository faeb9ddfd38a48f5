"""The engine's overhead on a realistic model: run latency / direct LLM call latency.

    python -m bench.overhead [--runs 25] [--delay 0.5]

The fake LLM answers after `--delay` seconds (`[[delay:S]]`). Interleaved, per round:
  direct  the same streamed chat completion the worker sends, straight to the fake LLM
  run     POST /threads/{id}/runs {"stream": true} until `thread.run.completed`
  poll    the SDK's create_and_poll (20 ms poll interval)
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
import openai

from bench.harness import BenchStack, api_client, bench_stack, create_assistant, create_thread, sse
from bench.report import Report, log, summary_ms


async def direct_call(llm: httpx.AsyncClient, content: str) -> float:
    body = {"model": "fake-model", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": content}]}
    started = time.perf_counter()
    async with llm.stream("POST", "/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.strip() == "data: [DONE]":
                break
    return time.perf_counter() - started


async def run_sse(http: httpx.AsyncClient, assistant: str, content: str) -> float:
    thread = await create_thread(http, content)
    started = time.perf_counter()
    async for item in sse(http, "POST", f"/threads/{thread}/runs",
                          {"assistant_id": assistant, "stream": True}):
        if item.event == "thread.run.completed":
            return item.at - started
    raise RuntimeError("the stream ended without thread.run.completed")


async def run_poll(sdk: openai.AsyncOpenAI, http: httpx.AsyncClient, assistant: str,
                   content: str) -> float:
    thread = await create_thread(http, content)
    started = time.perf_counter()
    run = await sdk.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant,
                                                      poll_interval_ms=20)
    assert run.status == "completed", run.status
    return time.perf_counter() - started


async def measure(stack: BenchStack, rounds: int, delay: float) -> Report:
    report = Report("overhead")
    content = f"[[delay:{delay}]] [[reply:The weather in Paris is sunny and mild today.]]"
    samples: dict[str, list[float]] = {"direct": [], "run": [], "poll": []}
    async with api_client(stack) as http, httpx.AsyncClient(base_url=stack.llm_url,
                                                            timeout=60) as llm:
        sdk = openai.AsyncOpenAI(base_url=stack.api_url, api_key="bench", http_client=http,
                                 max_retries=0)
        assistant = await create_assistant(http)
        await direct_call(llm, content)
        log(f"measuring {rounds} rounds with the LLM at {delay * 1000:.0f} ms ...")
        for i in range(rounds):
            samples["direct"].append(await direct_call(llm, content))
            samples["run"].append(await run_sse(http, assistant, content))
            samples["poll"].append(await run_poll(sdk, http, assistant, content))
            if (i + 1) % 10 == 0:
                log(f"  {i + 1}/{rounds}")
    stats = {k: summary_ms(v) for k, v in samples.items()}
    direct = stats["direct"]["p50"]
    report.add("run / direct LLM call, p50 (SSE)", stats["run"]["p50"] / direct, "x", "<= 1.10",
               f"direct streamed call p50 {direct} ms")
    report.add("run / direct LLM call, p50 (SDK poll 20 ms)", stats["poll"]["p50"] / direct,
               "x", "<= 1.10", f"direct p50 {direct} ms")
    report.add("run / direct, p95 (SSE)", stats["run"]["p95"] / stats["direct"]["p95"], "x")
    report.add("run latency p50 (SSE)", stats["run"]["p50"], "ms")
    report.add("engine overhead p50 (SSE run - direct)", stats["run"]["p50"] - direct, "ms", "",
               f"the 10% budget at this delay is {direct * 0.1:.0f} ms")
    report.add("direct LLM call p50", direct, "ms", "", f"LLM delay {delay * 1000:.0f} ms")
    report.details = {"stats_ms": stats, "llm_delay_seconds": delay, "rounds": rounds}
    print("\nlatency (ms): " + "; ".join(
        f"{k} p50 {v['p50']} p95 {v['p95']} min {v['min']}" for k, v in stats.items()))
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--delay", type=float, default=0.5, help="LLM latency in seconds")
    args = parser.parse_args()
    async with bench_stack() as stack:
        report = await measure(stack, args.runs, args.delay)
    report.finish()


if __name__ == "__main__":
    asyncio.run(main())
