// Streaming runs through the official `openai` npm package's AssistantStream helpers
// (pinned in package.json; v6 signatures): `runs.stream(threadId, body)` and
// `runs.submitToolOutputsStream(runId, { thread_id, tool_outputs })`.
//
//   ASSISTANTS_BASE_URL=http://127.0.0.1:PORT node tests/js/stream_flow.mjs text|function
//
// Prints ONE JSON line on success; on any failure prints the error to stderr and exits 1.
// `[[...]]` directives in the user message script the test suite's fake LLM.
import OpenAI from "openai";

const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "getCurrentWeather",
    description: "Get the weather in location",
    parameters: {
      type: "object",
      properties: { location: { type: "string" } },
      required: ["location"],
    },
  },
};
const TOOL_OUTPUT = '{"temperature": 22, "unit": "celsius"}';

const textOf = (message) => message.content
  .filter((part) => part.type === "text").map((part) => part.text.value).join("");

// Consume one AssistantStream: every event name in order, every text delta, the messages as
// `thread.message.completed` carried them, the final run and the final message snapshots.
// (The SDK's snapshots keep the `status` of `thread.message.created`; `messageDone` has the
// completed message.)
async function record(stream) {
  const events = [];
  const deltas = [];
  const done = [];
  stream.on("event", (event) => events.push(event.event));
  stream.on("textDelta", (delta) => deltas.push(delta.value ?? ""));
  stream.on("messageDone", (m) => done.push({ id: m.id, status: m.status, text: textOf(m) }));
  const run = await stream.finalRun();
  const messages = await stream.finalMessages();
  return {
    events,
    deltas,
    run_id: run.id,
    run_status: run.status,
    required_action: run.required_action ?? null,
    messages_done: done,
    final_messages: messages.map((m) => ({ id: m.id, text: textOf(m) })),
  };
}

async function textRun(openai, model) {
  const assistant = await openai.beta.assistants.create({ model, name: "Streamer" });
  const thread = await openai.beta.threads.create({
    messages: [{ role: "user", content: "Count for me. [[tokens:10]] [[tokendelay:5]]" }],
  });
  const result = await record(
    openai.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id }));
  return { thread_id: thread.id, ...result, text: result.deltas.join("") };
}

async function functionRun(openai, model) {
  const assistant = await openai.beta.assistants.create({
    model, name: "Weather Bot", tools: [WEATHER_TOOL],
  });
  const thread = await openai.beta.threads.create({
    messages: [{
      role: "user",
      content: 'Weather in Paris? [[call:getCurrentWeather {"location": "Paris"}]]',
    }],
  });
  const first = await record(
    openai.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id }));
  const calls = first.required_action?.submit_tool_outputs?.tool_calls ?? [];
  if (calls.length === 0) {
    throw new Error(`first stream ended without a tool call: ${JSON.stringify(first)}`);
  }
  const second = await record(openai.beta.threads.runs.submitToolOutputsStream(first.run_id, {
    thread_id: thread.id,
    tool_outputs: calls.map((call) => ({ tool_call_id: call.id, output: TOOL_OUTPUT })),
  }));
  return {
    thread_id: thread.id,
    tool_calls: calls.map((call) => ({
      id: call.id, name: call.function.name, arguments: call.function.arguments,
    })),
    first,
    second,
    text: second.deltas.join(""),
  };
}

async function main() {
  const baseURL = process.env.ASSISTANTS_BASE_URL;
  if (!baseURL) throw new Error("ASSISTANTS_BASE_URL is not set");
  const scenario = process.argv[2];
  const scenarios = { text: textRun, function: functionRun };
  if (!(scenario in scenarios)) {
    throw new Error(`usage: stream_flow.mjs ${Object.keys(scenarios).join("|")}`);
  }
  const openai = new OpenAI({ baseURL, apiKey: "EMPTY", maxRetries: 0, timeout: 30_000 });
  const model = process.env.ASSISTANTS_MODEL ?? "fake-model";
  console.log(JSON.stringify(await scenarios[scenario](openai, model)));
}

main().catch((err) => {
  console.error(err?.stack ?? String(err));
  if (err?.status !== undefined) console.error(`HTTP ${err.status}: ${JSON.stringify(err.error)}`);
  process.exit(1);
});
