"""agency-swarm 0.x against this server, as its README shows it: an agency of two agents.

The CEO talks to the user and delegates through the `SendMessage` tool the agency gives it;
the Analyst has a custom `BaseTool` and a `files_folder`, which agency-swarm uploads and turns
into a vector store with `tool_resources.file_search.vector_stores` when it creates the
Analyst's assistant. The scripted model (tests/fake_llm.py) makes the CEO send the Analyst a
message whose own directives make the Analyst call its tool and file_search; each then
answers with the tool results it read, so the CEO's final answer carries the file's fact.
The same question is asked twice: with `get_completion` (runs polled) and with
`get_completion_stream` and an `AgencyEventHandler` (runs and tool outputs streamed, the
model first silent for longer than the 5 s that once killed streams).

Run in its own venv (tests/test_client_libraries.py makes it) with OPENAI_BASE_URL and
OPENAI_API_KEY set; prints PASS or FAIL and exits non-zero on failure.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agency_swarm import Agency, AgencyEventHandler, Agent, BaseTool
from agency_swarm.util.oai import get_openai_client
from pydantic import Field

FACT = f"The quartermaster's code word is {uuid.uuid4().hex[:12]}."
calls: list[str] = []


class GetCurrentWeather(BaseTool):
    """Get the current weather in a given location."""

    location: str = Field(..., description="The city, e.g. San Francisco")

    def run(self) -> str:
        calls.append(self.location)
        return json.dumps({"location": self.location, "temperature": 22, "unit": "celsius"})


def main() -> None:
    # agency-swarm writes settings.json to the working directory and renames the files in
    # files_folder (it appends their file ids): keep both in a scratch directory.
    with tempfile.TemporaryDirectory(prefix="agency-swarm-") as scratch:
        os.chdir(scratch)
        run_agency()


def run_agency() -> None:
    Path("files").mkdir()
    Path("files/quartermaster.md").write_text(f"# Quartermaster's notes\n\n{FACT}\n")

    ceo = Agent(name="CEO", description="Talks to the user and delegates to the Analyst.",
                instructions="Delegate every question to the Analyst and relay the answer.")
    analyst = Agent(name="Analyst", description="Answers from the weather tool and its files.",
                    instructions="Use your tools and files to answer.",
                    tools=[GetCurrentWeather], files_folder="./files")
    agency = Agency([ceo, [ceo, analyst]], shared_instructions="Be brief.", temperature=0.3)
    wait_for_analyst_store(analyst.id)

    inner = ("Weather and the code word, please. "
             '[[call:GetCurrentWeather {"location": "San Francisco"}]] '
             '[[call:file_search {"query": "quartermaster code word"}]]')
    send = {"recipient": "Analyst", "my_primary_instructions": "Ask the Analyst.",
            "message": inner}
    question = f"[[call:SendMessage {json.dumps(send)}]]"
    answer = agency.get_completion(question)
    check(calls == ["San Francisco"], f"the Analyst's tool ran with {calls}")
    check_answer(answer)

    deltas: list[str] = []

    class Deltas(AgencyEventHandler):
        def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            deltas.append(delta.value or "")

    # The CEO's model is silent for 6 s first: a stream must outlive a quiet model (it
    # died after 5 s when Redis reads timed out under the relay's blocking read).
    streamed = agency.get_completion_stream(f"[[delay:6]] {question}", event_handler=Deltas)
    check(calls == ["San Francisco"] * 2, f"the Analyst's tool ran with {calls}")
    check_answer(streamed)
    check(streamed in "".join(deltas), f"the streamed deltas lack the answer: {deltas}")
    print(f"PASS agency-swarm: {answer!r}")


def check_answer(answer: object) -> None:
    check(isinstance(answer, str) and FACT in answer,
          f"the answer does not quote the Analyst's file: {answer!r}")
    check('"temperature": 22' in str(answer), f"the answer lacks the tool output: {answer!r}")


def wait_for_analyst_store(assistant_id: str) -> None:
    """The files folder must have become a vector store on the Analyst's assistant. Wait for
    its ingestion, as OpenAI's docs advise before a run (agency-swarm itself does not)."""
    client = get_openai_client()
    resources = client.beta.assistants.retrieve(assistant_id).tool_resources
    store_ids = resources.file_search.vector_store_ids if resources and resources.file_search else []
    check(len(store_ids or []) == 1,
          f"files_folder made no vector store on the assistant: tool_resources={resources}")
    deadline = time.monotonic() + 60
    while (store := client.vector_stores.retrieve(store_ids[0])).file_counts.in_progress:
        check(time.monotonic() < deadline, f"store still ingesting: {store.file_counts}")
        time.sleep(0.2)
    check(store.file_counts.completed == 1, f"store file counts: {store.file_counts}")


def check(ok: bool, message: str) -> None:
    if not ok:
        print(f"FAIL agency-swarm: {message}")
        sys.exit(1)


if __name__ == "__main__":
    main()
