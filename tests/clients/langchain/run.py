"""LangChain's `OpenAIAssistantV2Runnable` against this server, as LangChain's docs show it.

An assistant made by `create_assistant` with a LangChain tool and `file_search` over a vector
store of one uploaded file, run by an `AgentExecutor` (`as_agent=True`): the executor calls the
tool when the run requires action and submits its output. The scripted model (tests/fake_llm.py)
calls both tools in one turn and then answers with the tool results it read, so the answer
proves the file was searched and the tool output arrived.

Run in its own venv (tests/test_client_libraries.py makes it) with OPENAI_BASE_URL and
OPENAI_API_KEY set; prints PASS or FAIL and exits non-zero on failure.
"""

from __future__ import annotations

import io
import json
import sys
import uuid

import openai
from langchain_classic.agents import AgentExecutor
from langchain_community.agents.openai_assistant import OpenAIAssistantV2Runnable
from langchain_core.tools import tool

FACT = f"The harbour pilot's code word is {uuid.uuid4().hex[:12]}."
calls: list[str] = []


@tool
def get_current_weather(location: str) -> str:
    """Get the current weather in a given location."""
    calls.append(location)
    return json.dumps({"location": location, "temperature": 22, "unit": "celsius"})


def main() -> None:
    client = openai.OpenAI(default_headers={"OpenAI-Beta": "assistants=v2"})
    store = client.vector_stores.create(name="langchain-docs")
    batch = client.vector_stores.file_batches.upload_and_poll(
        vector_store_id=store.id, files=[("harbour.txt", io.BytesIO(FACT.encode()))])
    check(batch.file_counts.completed == 1, f"file batch {batch.status}: {batch.file_counts}")

    agent = OpenAIAssistantV2Runnable.create_assistant(
        name="langchain weather assistant",
        instructions="You answer with the weather and what the harbour notes say.",
        tools=[get_current_weather, {"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
        model="gpt-4o",
        client=client,
        as_agent=True,
    )
    executor = AgentExecutor(agent=agent, tools=[get_current_weather])
    content = ("What's the weather in San Francisco, and the pilot's code word? "
               '[[call:get_current_weather {"location": "San Francisco"}]] '
               '[[call:file_search {"query": "harbour pilot code word"}]]')
    result = executor.invoke({"content": content})

    check(calls == ["San Francisco"], f"the tool ran with {calls}")
    output = result["output"]
    check(FACT in output, f"the answer does not quote the file: {output!r}")
    check('"temperature": 22' in output, f"the answer lacks the tool output: {output!r}")
    steps = client.beta.threads.runs.steps.list(
        run_id=result["run_id"], thread_id=result["thread_id"], order="asc")
    kinds = [c.type for s in steps.data if s.step_details.type == "tool_calls"
             for c in s.step_details.tool_calls]
    check(sorted(kinds) == ["file_search", "function"], f"run steps' tool calls: {kinds}")
    print(f"PASS langchain: {output!r}")


def check(ok: bool, message: str) -> None:
    if not ok:
        print(f"FAIL langchain: {message}")
        sys.exit(1)


if __name__ == "__main__":
    main()
