"""Token streaming through the API's SSE against streaming straight from the model.

    python -m bench.streaming [--runs 30] [--tokens 50] [--token-ms 20]

Per round (interleaved):
  direct  POST the fake LLM's /chat/completions (stream), time to the first content delta
  API     POST /threads/{id}/runs {"stream": true}, time to the first `thread.message.delta`
Both from the moment the request is sent; the model waits `--token-ms` before every token.
"First-token overhead" is the difference of the medians: everything the engine does before
the first token reaches the client (run row, workflow start, activity dispatch, prompt
building, opening the message, the Redis relay). The relay's own cost is measured apart:
the spread between the first and last delta, against the model's own spread.
Then a burst without token delay (`--burst` tokens) gives the most deltas/s relayed.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from bench.harness import BenchStack, api_client, bench_stack, create_assistant, create_thread, sse
from bench.report import Report, log, summary_ms


async def direct_stream(llm: httpx.AsyncClient, content: str) -> tuple[float, float, int]:
    """(seconds to the first content delta, seconds from first to last delta, deltas)."""
    body = {"model": "fake-model", "stream": True,
            "messages": [{"role": "user", "content": content}]}
    started = time.perf_counter()
    first = last = 0.0
    count = 0
    async with llm.stream("POST", "/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            text_delta = '"content": "' in line and '"content": ""' not in line
            if line.startswith("data: {") and text_delta:
                last = time.perf_counter()
                first = first or last
                count += 1
    return first - started, last - first, count


async def api_stream(http: httpx.AsyncClient, assistant: str,
                     content: str) -> tuple[float, float, int]:
    thread = await create_thread(http, content)
    started = time.perf_counter()
    first = last = 0.0
    count = 0
    async for item in sse(http, "POST", f"/threads/{thread}/runs",
                          {"assistant_id": assistant, "stream": True}):
        if item.event == "thread.message.delta":
            last = item.at
            first = first or last
            count += 1
    return first - started, last - first, count


async def measure(stack: BenchStack, rounds: int, tokens: int, token_ms: int,
                  burst: int) -> Report:
    report = Report("streaming")
    content = f"[[tokens:{tokens}]] [[tokendelay:{token_ms}]]"
    ttft: dict[str, list[float]] = {"direct": [], "api": []}
    spread: dict[str, list[float]] = {"direct": [], "api": []}
    counts: dict[str, list[int]] = {"direct": [], "api": []}
    async with api_client(stack) as http, httpx.AsyncClient(base_url=stack.llm_url,
                                                            timeout=60) as llm:
        assistant = await create_assistant(http)
        await direct_stream(llm, content)
        await api_stream(http, assistant, content)
        log(f"measuring {rounds} rounds of {tokens} tokens at {token_ms} ms/token ...")
        for i in range(rounds):
            for kind in ("direct", "api"):
                if kind == "direct":
                    first, span, n = await direct_stream(llm, content)
                else:
                    first, span, n = await api_stream(http, assistant, content)
                ttft[kind].append(first)
                spread[kind].append(span)
                counts[kind].append(n)
            if (i + 1) % 5 == 0:
                log(f"  {i + 1}/{rounds}")
        log(f"burst: {burst} tokens without delay, 3 times ...")
        burst_rates = []
        direct_burst_rates = []
        for _ in range(3):
            _, span, n = await api_stream(http, assistant, f"[[tokens:{burst}]]")
            burst_rates.append(n / span if span else 0.0)
            _, span, n = await direct_stream(llm, f"[[tokens:{burst}]]")
            direct_burst_rates.append(n / span if span else 0.0)
    t = {k: summary_ms(v) for k, v in ttft.items()}
    s = {k: summary_ms(v) for k, v in spread.items()}
    overhead = t["api"]["p50"] - t["direct"]["p50"]
    relayed = [n / span for n, span in zip(counts["api"], spread["api"], strict=True) if span]
    lag_per_delta = (s["api"]["p50"] - s["direct"]["p50"]) / max(1, tokens - 1)
    report.add("first-token overhead, median (API SSE - direct)", overhead, "ms", "<= 30",
               f"direct first token p50 {t['direct']['p50']} ms")
    report.add("first token via API SSE, p50", t["api"]["p50"], "ms", "",
               f"p95 {t['api']['p95']} ms")
    report.add("first token direct from LLM, p50", t["direct"]["p50"], "ms", "",
               f"{token_ms} ms token delay")
    report.add("added delay per relayed delta (spread diff)", lag_per_delta, "ms", "",
               f"spread first->last: API {s['api']['p50']} vs direct {s['direct']['p50']} ms")
    report.add("deltas/s relayed at 20 ms/token, median", sorted(relayed)[len(relayed) // 2],
               "deltas/s", "", f"model produces {1000 / token_ms:.0f}/s")
    report.add("deltas/s relayed, burst (no token delay)", max(burst_rates), "deltas/s", "",
               f"direct from LLM {max(direct_burst_rates):.0f}/s")
    lost = [a - d for a, d in zip(counts["api"], counts["direct"], strict=True)]
    report.add("deltas lost or merged (API - direct count)", min(lost), "", "",
               f"{counts['api'][0]} vs {counts['direct'][0]} per run")
    report.details = {"first_token_ms": t, "spread_ms": s, "counts": counts,
                      "burst_rates": burst_rates, "direct_burst_rates": direct_burst_rates,
                      "tokens": tokens, "token_ms": token_ms, "rounds": rounds}
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)  # the median of 15 moved by +-4 ms
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--token-ms", type=int, default=20)
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()
    async with bench_stack() as stack:
        report = await measure(stack, args.runs, args.tokens, args.token_ms, args.burst)
    report.finish()


if __name__ == "__main__":
    asyncio.run(main())
