"""An API process killed mid-stream: the client resumes on another API process with
`Last-Event-ID` and, over both connections, sees every event exactly once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.helpers import ApiProcess

pytestmark = pytest.mark.usefixtures("worker")  # the in-process worker serves the default queue

Event = tuple[str, str, str]  # (id, event, data)


async def sse(response: httpx.Response) -> AsyncIterator[Event]:
    """Complete SSE frames only: a frame cut off by a dying server is never yielded."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "event" in fields:
                yield fields.get("id", ""), fields["event"], fields.get("data", "")
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def collect(http: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None,
                  stop_after: int | None = None, on_event: Any = None) -> list[Event]:
    got: list[Event] = []
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        async for event in sse(response):
            got.append(event)
            if on_event is not None:
                await on_event(got)
            if event[1] == "done" or (stop_after is not None and len(got) >= stop_after):
                break
    return got


async def test_stream_resumes_on_a_second_api_process_after_a_kill(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:
    api1 = ApiProcess("api-1", tmp_path, stack_env)
    api2 = ApiProcess("api-2", tmp_path, stack_env)
    try:
        await asyncio.gather(api1.ready(), api2.ready())
        async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=15)) as http:
            assistant = (await http.post(f"{api1.url}/v1/assistants",
                                         json={"model": "fake-model"})).json()
            run = (await http.post(f"{api1.url}/v1/threads/runs", json={
                "assistant_id": assistant["id"],
                "thread": {"messages": [{"role": "user",
                                         "content": "[[tokens:60]] [[tokendelay:50]]"}]},
            })).json()
            assert run["status"] == "queued", run
            path = f"/v1/threads/{run['thread_id']}/runs/{run['id']}/events"

            async def kill_after_some_deltas(got: list[Event]) -> None:
                if sum(e[1] == "thread.message.delta" for e in got) == 10:
                    api1.proc.kill()  # SIGKILL, mid-stream

            first: list[Event] = []
            with pytest.raises(httpx.HTTPError):
                async with http.stream("GET", f"{api1.url}{path}") as response:
                    async for event in sse(response):
                        first.append(event)
                        await kill_after_some_deltas(first)
                        assert event[1] != "done", "the stream ended before the kill"
            assert api1.proc.process.returncode == -9
            assert sum(e[1] == "thread.message.delta" for e in first) >= 10

            second = await collect(http, f"{api2.url}{path}",
                                   headers={"Last-Event-ID": first[-1][0]})
            assert second[-1][1:] == ("done", "[DONE]")
            # After the fact, the whole stream, from the start.
            full = await collect(http, f"{api2.url}{path}?starting_after=0-0")

        resumed = first + second
        assert [e[0] for e in resumed] == [e[0] for e in full]  # nothing missing, nothing twice
        assert resumed == full
        ids = [e[0] for e in full if e[0]]
        assert len(ids) == len(set(ids))
        names = [e[1] for e in full]
        assert names[:2] == ["thread.created", "thread.run.created"], names
        assert names[-2:] == ["thread.run.completed", "done"], names
        text = "".join(json.loads(d)["delta"]["content"][0]["text"]["value"]
                       for _, name, d in resumed if name == "thread.message.delta")
        completed = [json.loads(d) for _, name, d in full if name == "thread.message.completed"]
        assert len(completed) == 1
        assert text == completed[0]["content"][0]["text"]["value"]
        assert text.split() == [f"w{i}" for i in range(1, 61)]
    finally:
        for api in (api1, api2):
            await asyncio.to_thread(api.proc.stop)
