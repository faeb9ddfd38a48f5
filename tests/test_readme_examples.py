"""The README's weather examples, run verbatim from README.md's own text.

The two fenced blocks that open with `// weather.mjs` and `# weather.py` are written to
files of those names and run as the README says (`node weather.mjs`, `python weather.py`)
against the session's API over real HTTP with the worker running; only the base URL
(`http://localhost:3000`) is replaced by the test server's. The README's question has no
`[[directives]]`, so the fake model is scripted by model name (`FakeLLM.scripts`): no
call, one call, two parallel calls. Each must print the final answer and exit 0.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fake_llm import FakeLLM
from tests.test_node_sdk import JS_DIR, NODE_TIMEOUT_SECONDS, _run, node_sdk

pytestmark = pytest.mark.usefixtures("worker")

README = Path(__file__).resolve().parent.parent / "README.md"
README_URL = "http://localhost:3000"
MODEL = "neural-chat-7b-v3-2"  # the README's
QUESTION = "What's the weather in San Francisco?"
SF = {"location": "San Francisco, CA"}
PARIS = {"location": "Paris"}

__all__ = ["node_sdk"]  # a fixture, imported for the JS example


def readme_example(first_line: str) -> str:
    """The one fenced code block of README.md whose first line is `first_line`."""
    blocks = re.findall(r"^```\w*\n(.*?)^```$", README.read_text(), re.S | re.M)
    found: list[str] = [block for block in blocks if block.startswith(first_line + "\n")]
    assert len(found) == 1, f"README.md has {len(found)} blocks opening with {first_line!r}"
    return found[0]


def _write(example: str, directory: Path, name: str, base_url: str) -> Path:
    assert example.count(README_URL) == 1, f"expected one {README_URL} in {name}"
    path = directory / name
    path.write_text(example.replace(README_URL, base_url))
    return path


def _tool_output(arguments: dict[str, str]) -> dict[str, object]:
    """What the examples' stand-in function returns, as their code writes it."""
    return {"location": arguments["location"], "temperature": 68, "unit": "F"}


def _call(arguments: dict[str, str]) -> str:
    return f"[[call:getCurrentWeather {json.dumps(arguments)}]]"


TOOL_RESULTS = "Tool results: "
SCRIPTS: dict[str, tuple[str, str | list[dict[str, object]]]] = {
    # After tool results the fake answers with what it read: "Tool results: <output> | ...";
    # the function outputs are compared as JSON (node and Python space it differently).
    "one call": (_call(SF), [_tool_output(SF)]),
    "two calls": (_call(SF) + _call(PARIS), [_tool_output(SF), _tool_output(PARIS)]),
    "no call": ("[[reply:It is sunny, I think.]]", "It is sunny, I think."),
}


@dataclass
class Scripted:
    calls: bool
    answer: str | list[dict[str, object]]  # what the example must print
    asked_before: int


@pytest.fixture(params=list(SCRIPTS))
def scripted(request: pytest.FixtureRequest, fake_llm: FakeLLM) -> Iterator[Scripted]:
    """The fake scripted for the README's model name, for the duration of one test."""
    script, answer = SCRIPTS[request.param]
    fake_llm.scripts[MODEL] = script
    try:
        yield Scripted(isinstance(answer, list), answer, len(_asked(fake_llm)))
    finally:
        del fake_llm.scripts[MODEL]


def _asked(fake_llm: FakeLLM) -> list[dict[str, object]]:
    """Model requests with the README's own question under the README's model name."""
    return [b for b in fake_llm.requests_containing(QUESTION) if b.get("model") == MODEL]


def _check(result: tuple[int, str, str], scripted: Scripted, fake_llm: FakeLLM) -> None:
    code, out, err = result
    assert code == 0, f"exited {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert out.endswith("\n") and out.count("\n") == 1, f"stdout:\n{out}\nstderr:\n{err}"
    if isinstance(scripted.answer, str):
        assert out == scripted.answer + "\n"
    else:  # the final answer is made of every call's result, in order
        assert out.startswith(TOOL_RESULTS) and "68" in out, out
        outputs = [json.loads(part) for part in out[len(TOOL_RESULTS):].split(" | ")]
        assert outputs == scripted.answer
    # One model call, or two with the tool results: the example ran its run, nothing else.
    assert len(_asked(fake_llm)) - scripted.asked_before == (2 if scripted.calls else 1)


async def test_the_readme_python_example_runs_as_written(
        tmp_path: Path, live_server_url: str, scripted: Scripted, fake_llm: FakeLLM) -> None:
    script = _write(readme_example("# weather.py"), tmp_path, "weather.py", live_server_url)
    result = await _run(sys.executable, script.name, cwd=tmp_path,
                        limit_seconds=NODE_TIMEOUT_SECONDS)
    _check(result, scripted, fake_llm)


@pytest.mark.node
async def test_the_readme_js_example_runs_as_written(
        tmp_path: Path, live_server_url: str, scripted: Scripted, fake_llm: FakeLLM,
        node_sdk: str) -> None:
    script = _write(readme_example("// weather.mjs"), tmp_path, "weather.mjs", live_server_url)
    # `import OpenAI from "openai"` resolves through node_modules beside the script: the
    # pinned SDK of tests/js.
    (tmp_path / "node_modules").symlink_to(JS_DIR / "node_modules")
    result = await _run(node_sdk, script.name, cwd=tmp_path, limit_seconds=NODE_TIMEOUT_SECONDS)
    _check(result, scripted, fake_llm)
