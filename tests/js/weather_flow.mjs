// The original project's "Function calling in JS" walkthrough, run with the official `openai`
// npm package (pinned in package.json; v6 call signatures) against our server's bare paths.
//
//   ASSISTANTS_BASE_URL=http://127.0.0.1:PORT node tests/js/weather_flow.mjs
//
// Prints ONE JSON line on success; on any failure prints the error to stderr and exits 1.
// The `[[call:...]]` directive in the user message scripts the test suite's fake LLM.
import OpenAI from "openai";

const POLL_INTERVAL_MS = 100;
const POLL_TIMEOUT_MS = Number(process.env.ASSISTANTS_POLL_TIMEOUT_MS ?? 60_000);
const FAILED = new Set(["failed", "cancelled", "cancelling", "expired", "incomplete"]);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(openai, threadId, runId, wanted) {
  const deadline = Date.now() + POLL_TIMEOUT_MS;
  for (;;) {
    const run = await openai.beta.threads.runs.retrieve(runId, { thread_id: threadId });
    if (run.status === wanted) return run;
    if (FAILED.has(run.status)) {
      throw new Error(`run ${runId} ended ${run.status} while waiting for ${wanted}: `
        + JSON.stringify(run.last_error));
    }
    if (Date.now() > deadline) {
      throw new Error(`run ${runId} still ${run.status} after ${POLL_TIMEOUT_MS} ms (wanted ${wanted})`);
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

async function main() {
  const baseURL = process.env.ASSISTANTS_BASE_URL;
  if (!baseURL) throw new Error("ASSISTANTS_BASE_URL is not set");
  const openai = new OpenAI({ baseURL, apiKey: "EMPTY", maxRetries: 0, timeout: 30_000 });

  const assistant = await openai.beta.assistants.create({
    instructions: "You are a weather bot. Use the provided functions to answer questions.",
    model: process.env.ASSISTANTS_MODEL ?? "fake-model",
    name: "Weather Bot",
    tools: [{
      type: "function",
      function: {
        name: "getCurrentWeather",
        description: "Get the weather in location",
        parameters: {
          type: "object",
          properties: {
            location: { type: "string", description: "The city and state e.g. San Francisco, CA" },
            unit: { type: "string" },
          },
          required: ["location"],
        },
      },
    }],
  });

  const thread = await openai.beta.threads.create();
  await openai.beta.threads.messages.create(thread.id, {
    role: "user",
    content: `What's the weather in San Francisco? [[call:getCurrentWeather {"location": "San Francisco, CA"}]]`,
  });

  const created = await openai.beta.threads.runs.create(thread.id, {
    assistant_id: assistant.id,
    instructions: "You are a weather bot. Use the provided functions to answer questions.",
  });

  const waiting = await waitFor(openai, thread.id, created.id, "requires_action");
  const toolCall = waiting.required_action?.submit_tool_outputs?.tool_calls?.[0];
  if (!toolCall) throw new Error(`requires_action without a tool call: ${JSON.stringify(waiting)}`);

  await openai.beta.threads.runs.submitToolOutputs(created.id, {
    thread_id: thread.id,
    tool_outputs: [{ tool_call_id: toolCall.id, output: '{"temperature": 22, "unit": "celsius"}' }],
  });
  const done = await waitFor(openai, thread.id, created.id, "completed");

  // Default order is newest first, as in the original walkthrough.
  const messages = await openai.beta.threads.messages.list(thread.id);
  const newestAssistant = messages.data.find((m) => m.role === "assistant");
  const reply = newestAssistant?.content
    ?.filter((part) => part.type === "text")
    .map((part) => part.text.value)
    .join("") ?? null;

  console.log(JSON.stringify({
    assistant_id: assistant.id,
    run_status: done.status,
    tool_call_name: toolCall.function.name,
    reply,
    message_roles: messages.data.map((m) => m.role).reverse(),
  }));
}

main().catch((err) => {
  console.error(err?.stack ?? String(err));
  if (err?.status !== undefined) console.error(`HTTP ${err.status}: ${JSON.stringify(err.error)}`);
  process.exit(1);
});
