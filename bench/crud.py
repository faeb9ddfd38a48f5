"""Read throughput of one API process: retrieve run and list messages (20 items).

    python -m bench.crud [--seconds 10] [--concurrency 16] [--profile]

A bounded-concurrency httpx client hammers each endpoint for `--seconds`. The same client
against a bare Starlette route (the fake LLM's GET /v1/models, its own uvicorn process) is
the floor: what this client and uvicorn manage on this machine with no application work.
The load generator shares the 2 cores with the server, so both numbers are lower bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from bench.harness import (
    RESULTS,
    BenchStack,
    Report,
    api_client,
    bench_stack,
    create_assistant,
    create_thread,
    log,
    print_profile,
    profile_summary,
    run_to_end,
    start_profile,
    summary_ms,
)


async def hammer(base_url: str, url: str, seconds: float,
                 concurrency: int) -> tuple[float, list[float], int]:
    """(requests/s, latencies, errors) with `concurrency` requests always in flight, each
    loop on its own connection (see harness.fan_out for why not one shared client)."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base_url) as http:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await http.get(url)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies, errors


async def measure(stack: BenchStack, seconds: float, concurrency: int, profile: bool) -> Report:
    report = Report("crud")
    async with api_client(stack, connections=concurrency) as http:
        assistant = await create_assistant(http)
        run = await run_to_end(http, assistant, "[[reply:done]]")
        thread = await create_thread(http, "first")
        for i in range(19):
            (await http.post(f"/threads/{thread}/messages",
                             json={"role": "user", "content": f"message {i}"})).raise_for_status()
        targets = {
            "retrieve run": f"{stack.api_url}/threads/{run['thread_id']}/runs/{run['id']}",
            "list messages (20)": f"{stack.api_url}/threads/{thread}/messages?limit=20",
            "floor: bare Starlette GET": stack.llm_url.removesuffix("/v1") + "/v1/models",
        }
        listed = (await http.get(targets["list messages (20)"])).json()
        assert len(listed["data"]) == 20, len(listed["data"])
        results = {}
        for name, url in targets.items():
            await hammer(stack.api_url, url, 1.0, concurrency)  # warm up connections and caches
            spy = None
            if profile and not name.startswith("floor"):
                spy = start_profile(stack.api, "crud-" + name.split()[0], seconds)
            log(f"{name}: {seconds:.0f}s at concurrency {concurrency} ...")
            rate, latencies, errors = await hammer(stack.api_url, url, seconds, concurrency)
            if spy is not None:
                spy.process.wait(60)
            results[name] = {"rps": round(rate, 1), "errors": errors, **summary_ms(latencies)}
    floor = results["floor: bare Starlette GET"]
    for name, result in results.items():
        target = ">= 1000" if name == "retrieve run" else ""
        compared = (f"floor {floor['rps']:.0f} req/s, same client" if not name.startswith("floor")
                    else "client + uvicorn, no app work")
        report.add(f"{name}: requests/s", result["rps"], "req/s", target, compared)
        report.add(f"{name}: p50 / p95", result["p50"], "ms", "",
                   f"p95 {result['p95']} ms, concurrency {concurrency}, {result['errors']} errors")
    report.details = {"results": results, "seconds": seconds, "concurrency": concurrency}
    if profile:
        for name in ("crud-retrieve", "crud-list"):
            summary = profile_summary(RESULTS / f"{name}.collapsed.txt")
            report.details[f"profile_{name}"] = summary
            print_profile(name, summary)
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="py-spy the API")
    args = parser.parse_args()
    async with bench_stack(warmup_runs=2) as stack:
        report = await measure(stack, args.seconds, args.concurrency, args.profile)
    report.finish()


if __name__ == "__main__":
    asyncio.run(main())
