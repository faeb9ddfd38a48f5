"""LlamaIndex's `OpenAIAssistantAgent` against this server, as LlamaIndex's docs show it.

`OpenAIAssistantAgent.from_new` with a `FunctionTool` and the built-in `file_search`;
`agent.chat(...)` runs the function tool through `requires_action` and submitted outputs; then
a file is uploaded with `upload_files` and attached to a message with `add_message` (the docs'
other way to give the assistant a file), and `run_assistant` searches it. The scripted model
(tests/fake_llm.py) calls the tools and then answers with the tool results it read.

Run in its own venv (tests/test_client_libraries.py makes it) with OPENAI_BASE_URL and
OPENAI_API_KEY set; prints PASS or FAIL and exits non-zero on failure.
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

from llama_index.agent.openai import OpenAIAssistantAgent
from llama_index.core.tools import FunctionTool

warnings.filterwarnings("ignore", category=DeprecationWarning)
FACT = f"The lighthouse keeper's code word is {uuid.uuid4().hex[:12]}."
calls: list[str] = []


def get_current_weather(location: str) -> str:
    """Get the current weather in a given location."""
    calls.append(location)
    return json.dumps({"location": location, "temperature": 22, "unit": "celsius"})


def main() -> None:
    agent = OpenAIAssistantAgent.from_new(
        name="llamaindex weather assistant",
        instructions="You answer with the weather and what the lighthouse notes say.",
        tools=[FunctionTool.from_defaults(fn=get_current_weather)],
        openai_tools=[{"type": "file_search"}],
        instructions_prefix="Please address the user as Jerry.",
        model="gpt-4o",
        run_retrieve_sleep_time=0.2,
    )

    response = agent.chat("What's the weather in San Francisco? "
                          '[[call:get_current_weather {"location": "San Francisco"}]]')
    check(calls == ["San Francisco"], f"the tool ran with {calls}")
    check('"temperature": 22' in response.response,
          f"the answer lacks the tool output: {response.response!r}")
    check([s.tool_name for s in response.sources] == ["get_current_weather"],
          f"sources: {response.sources}")

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lighthouse.txt"
        path.write_text(FACT)
        file_dict = agent.upload_files([str(path)])
    agent.add_message("What is the keeper's code word? "
                      '[[call:file_search {"query": "lighthouse keeper code word"}]]',
                      file_ids=list(file_dict))
    run, _ = agent.run_assistant()
    check(run.status == "completed", f"run {run.status}: {run.last_error}")
    answer = agent.latest_message.content or ""
    check(FACT in answer, f"the answer does not quote the file: {answer!r}")
    roles = [m.role.value for m in agent.chat_history]
    check(roles == ["user", "assistant", "user", "assistant"], f"thread roles: {roles}")
    print(f"PASS llamaindex: {response.response!r} / {answer!r}")


def check(ok: bool, message: str) -> None:
    if not ok:
        print(f"FAIL llamaindex: {message}")
        sys.exit(1)


if __name__ == "__main__":
    main()
