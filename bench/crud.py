"""Throughput and API CPU per request of one API process: reads and run creation.

    python -m bench.crud [--seconds 10] [--concurrency 16] [--creates 200] [--profile]
                         [--client lean|httpx]

A bounded-concurrency client hammers retrieve run and list messages (20 items) for
`--seconds` each: by default bench/lean_http.py's keep-alive GET loop, which costs the
shared cores a fraction of httpx's CPU per request (`--client httpx`: the httpx client
these numbers were first taken with). The same client against a bare Starlette route (the
fake LLM's GET /v1/models, its own uvicorn process) is the floor: what this client and
uvicorn manage on this machine with no application work. Then `--creates` runs are
created each way (POST /threads/runs with one message, and POST /threads/{id}/runs on
idle threads made beforehand, as bench/throughput.py does); the worker starts running
them meanwhile.

The load generator shares the 2 cores with the server, so req/s and latency are lower
bounds that move with anything else running on the machine. "API CPU per request" (user +
system CPU time of the API process over the measured window, divided by the requests
served; for the floor, the bare Starlette process's) does not depend on how the cores were
shared, so it is the number to compare between versions.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import psutil

from bench.harness import (
    BenchStack,
    api_client,
    bench_stack,
    create_assistant,
    create_thread,
    run_to_end,
)
from bench.lean_http import lean_hammer
from bench.profiling import print_profile, profile_summary, start_profile
from bench.report import RESULTS, Report, log, summary_ms


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by a process (children included)."""
    process = psutil.Process(pid)
    return sum(t.user + t.system for t in
               (p.cpu_times() for p in [process, *process.children(recursive=True)]))


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


def hammer_with(client: str) -> Callable[[str, str, float, int],
                                         Awaitable[tuple[float, list[float], int]]]:
    """(base_url, url, seconds, concurrency) -> the chosen client's `hammer`."""
    if client == "httpx":
        return hammer

    async def lean(_base_url: str, url: str, seconds: float,
                   concurrency: int) -> tuple[float, list[float], int]:
        return await lean_hammer(url, seconds, concurrency)

    return lean


async def burst(base_url: str, bodies: list[tuple[str, Any]],
                concurrency: int) -> tuple[float, list[float], int]:
    """(requests/s, latencies, errors) POSTing each (url, body) once, `concurrency` at a time."""
    latencies: list[float] = []
    errors = 0
    queue = iter(bodies)

    async def loop() -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(60.0)) as http:
            for url, body in queue:
                started = time.perf_counter()
                response = await http.post(url, json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies, errors


def profile_name(name: str) -> str:
    """bench/results/<this>.collapsed.txt for an endpoint's py-spy profile."""
    short = {"retrieve run": "retrieve", "list messages (20)": "list"}
    return "crud-" + short.get(name, "-".join(name.split()))


async def measured(stack: BenchStack, name: str, profile: bool,
                   work: Callable[[], Awaitable[tuple[float, list[float], int]]],
                   ) -> dict[str, Any]:
    """Run `work`, py-spying the API if asked; its numbers plus the serving process's CPU
    ms per request (the API's; for the floor, the bare Starlette app's)."""
    floor = name.startswith("floor")
    spy = None
    if profile and not floor:
        # Stopped (SIGINT) when `work` ends; the duration is only a backstop.
        spy = start_profile(stack.api, profile_name(name), 600)
    pid = stack.llm.pid if floor else stack.api.pid
    own = psutil.Process()
    cpu_before, own_before = cpu_seconds(pid), sum(own.cpu_times()[:2])
    rate, latencies, errors = await work()
    cpu, own_cpu = cpu_seconds(pid) - cpu_before, sum(own.cpu_times()[:2]) - own_before
    if spy is not None:
        spy.stop(60)
    served = max(1, len(latencies))
    return {"rps": round(rate, 1), "errors": errors,
            "cpu_ms_per_request": round(cpu * 1000 / served, 3),
            "client_cpu_ms_per_request": round(own_cpu * 1000 / served, 3),
            **summary_ms(latencies)}


async def measure(stack: BenchStack, seconds: float, concurrency: int, creates: int,
                  profile: bool, client: str) -> Report:
    report = Report("crud")
    get = hammer_with(client)
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
            await get(stack.api_url, url, 1.0, concurrency)  # warm up connections and caches
            log(f"{name}: {seconds:.0f}s at concurrency {concurrency}, {client} client ...")
            results[name] = await measured(
                stack, name, profile,
                lambda url=url: get(stack.api_url, url, seconds, concurrency))
        if creates:
            # Idle threads for POST /threads/{id}/runs, made before its window opens.
            threads = [await create_thread(http, f"[[reply:answer {i}]]") for i in range(creates)]
            posts: dict[str, list[tuple[str, Any]]] = {
                "create thread and run": [("/threads/runs", {
                    "assistant_id": assistant, "thread": {"messages": [
                        {"role": "user", "content": f"[[reply:answer {i}]]"}]}})
                    for i in range(creates)],
                "create run": [(f"/threads/{t}/runs", {"assistant_id": assistant})
                               for t in threads],
            }
            for name, bodies in posts.items():
                log(f"{name}: {creates} requests at concurrency {concurrency} ...")
                results[name] = await measured(
                    stack, name, profile,
                    lambda bodies=bodies: burst(stack.api_url, bodies, concurrency))
    floor = results["floor: bare Starlette GET"]
    for name, result in results.items():
        target = ">= 1000" if name == "retrieve run" else ""
        reads = name in targets
        if name.startswith("floor"):
            compared = f"{client} client + uvicorn, no app work"
        elif reads:
            compared = f"floor {floor['rps']:.0f} req/s, same client ({client})"
        else:  # creates: httpx, and the worker runs the runs meanwhile
            compared = "httpx client, the worker running the runs meanwhile"
        report.add(f"{name}: requests/s", result["rps"], "req/s", target, compared)
        report.add(f"{name}: p50 / p95", result["p50"], "ms", "",
                   f"p95 {result['p95']} ms, concurrency {concurrency}, {result['errors']} errors")
        report.add(f"{name}: {'server' if name.startswith('floor') else 'API'} CPU per request",
                   result["cpu_ms_per_request"], "ms", "",
                   "user+system CPU of the serving process / requests in the window")
        if reads:
            report.add(f"{name}: load generator CPU per request",
                       result["client_cpu_ms_per_request"], "ms", "",
                       f"this process's user+system CPU / requests ({client})")
    report.details = {"results": results, "seconds": seconds, "concurrency": concurrency,
                      "creates": creates, "client": client}
    if profile:
        for name in (profile_name(n) for n in results if not n.startswith("floor")):
            summary = profile_summary(RESULTS / f"{name}.collapsed.txt")
            report.details[f"profile_{name}"] = summary
            print_profile(name, summary)
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--creates", type=int, default=200,
                        help="runs to create each way (0: reads only)")
    parser.add_argument("--profile", action="store_true", help="py-spy the API")
    parser.add_argument("--client", choices=("lean", "httpx"), default="lean",
                        help="the reads' load generator (creates always use httpx)")
    args = parser.parse_args()
    async with bench_stack(warmup_runs=2) as stack:
        report = await measure(stack, args.seconds, args.concurrency, args.creates,
                               args.profile, args.client)
    report.finish()


if __name__ == "__main__":
    asyncio.run(main())
