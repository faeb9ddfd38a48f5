// Streams through the official `openai` npm package's AssistantStream helpers while the model
// stays silent for long stretches (tests/test_stream_silence.py scripts the silences with the
// fake model's [[pause:N:MS]] directive in CONTENT).
//
//   ASSISTANTS_BASE_URL=http://127.0.0.1:PORT node tests/js/silence_flow.mjs SCENARIO CONTENT
//
// SCENARIO: `run` (runs.stream), `thread_and_run` (createAndRunStream), or `function`
// (runs.stream up to requires_action, then submitToolOutputsStream).
// Prints ONE JSON line on success; on any failure prints the error to stderr and exits 1.
import OpenAI from "openai";

const TOOL = {
  type: "function",
  function: {
    name: "getCurrentWeather",
    parameters: { type: "object", properties: { location: { type: "string" } } },
  },
};

// Every event name in order, every text delta, the final run.
async function record(stream) {
  const events = [];
  const deltas = [];
  stream.on("event", (event) => events.push(event.event));
  stream.on("textDelta", (delta) => deltas.push(delta.value ?? ""));
  const run = await stream.finalRun();
  return {
    events, deltas, run_id: run.id, thread_id: run.thread_id, run_status: run.status,
    tool_calls: (run.required_action?.submit_tool_outputs?.tool_calls ?? []).map(
      (call) => ({ id: call.id, name: call.function.name, arguments: call.function.arguments })),
  };
}

async function main() {
  const baseURL = process.env.ASSISTANTS_BASE_URL;
  if (!baseURL) throw new Error("ASSISTANTS_BASE_URL is not set");
  const [scenario, content] = process.argv.slice(2);
  // The SDK's timeout bounds the wait for response headers; the silences are in the body.
  const openai = new OpenAI({ baseURL, apiKey: "EMPTY", maxRetries: 0, timeout: 120_000 });
  const assistant = await openai.beta.assistants.create({ model: "fake-model", tools: [TOOL] });
  const messages = [{ role: "user", content }];
  if (scenario === "thread_and_run") {
    const stream = openai.beta.threads.createAndRunStream({
      assistant_id: assistant.id, thread: { messages },
    });
    console.log(JSON.stringify({ legs: [await record(stream)] }));
    return;
  }
  const thread = await openai.beta.threads.create({ messages });
  const first = await record(
    openai.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id }));
  if (scenario === "run") {
    console.log(JSON.stringify({ legs: [first] }));
    return;
  }
  if (scenario !== "function") throw new Error(`unknown scenario ${scenario}`);
  if (first.tool_calls.length === 0) {
    throw new Error(`first stream ended without a tool call: ${JSON.stringify(first)}`);
  }
  const second = await record(openai.beta.threads.runs.submitToolOutputsStream(first.run_id, {
    thread_id: thread.id,
    tool_outputs: first.tool_calls.map((call) => ({ tool_call_id: call.id, output: "sunny" })),
  }));
  console.log(JSON.stringify({ legs: [first, second] }));
}

main().catch((err) => {
  console.error(err?.stack ?? String(err));
  if (err?.status !== undefined) console.error(`HTTP ${err.status}: ${JSON.stringify(err.error)}`);
  process.exit(1);
});
