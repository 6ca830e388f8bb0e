// Drives tactful's own web app (served at / by `tactful serve`) in headless Chromium
// (playwright-core, Debian's /usr/bin/chromium; no browser is ever downloaded).
//
// Usage: node sandbox.mjs --url <server URL> --scenario <conversation | streaming>
//          [--say <message> --expect <reply text>] ... [--flag <note>] [--key <API key>]
//          [--screenshots <folder>] [--chromium /usr/bin/chromium] [--timeout <ms per step>]
//
// conversation: starts a guest session from the sandbox, says each --say and waits for a reply
//   containing its --expect; opens the inspector of the last reply and reads what it shows; flags
//   that reply with --flag's note (when given) and reads the list of flagged replies; reloads the
//   session's page and reads the conversation again. With --screenshots, saves sandbox.png and
//   inspector.png there (1280x800).
// streaming: says one --say and samples the agent's reply in the page while it is streamed.
//
// Prints what it saw to stderr and, on success, one JSON line on stdout. On failure it saves a
// screenshot, prints what went wrong (with the browser's console errors) and exits with 1.
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    scenario: { type: "string" },
    say: { type: "string", multiple: true, default: [] },
    expect: { type: "string", multiple: true, default: [] },
    flag: { type: "string" },
    key: { type: "string" },
    screenshots: { type: "string" },
    chromium: { type: "string", default: process.env.TACTFUL_E2E_CHROMIUM || "/usr/bin/chromium" },
    timeout: { type: "string", default: "60000" },
    failure: { type: "string", default: path.join(tmpdir(), `tactful-sandbox-failure-${process.pid}.png`) },
  },
});
if (!args.url || !["conversation", "streaming"].includes(args.scenario) || args.say.length === 0) {
  console.error("usage: node sandbox.mjs --url <url> --scenario <conversation|streaming> --say <message> ...");
  process.exit(2);
}

const server = new URL(args.url);
const timeout = Number(args.timeout);
const problems = [];
const started = Date.now();
const log = (line) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`);

// The conversation as the page shows it: one entry per message, in order.
const transcript = (page) =>
  page.locator('.timeline li[data-kind="message"]').evaluateAll((items) =>
    items.map((li) => ({
      from: li.dataset.from,
      text: li.querySelector(".text")?.textContent ?? "",
      event_id: li.dataset.eventId,
      trace_id: li.dataset.traceId,
      preamble: li.dataset.preamble === "true",
    })),
  );

async function startSession(page) {
  await page.goto(server.href);
  await page.getByRole("button", { name: "New session" }).click();
  await page.waitForURL(/\/ui\/sessions\//, { timeout });
  const sessionId = decodeURIComponent(new URL(page.url()).pathname.split("/")[3]);
  await page.locator(`.chat[data-session-id="${sessionId}"]`).waitFor({ timeout });
  log(`session ${sessionId}`);
  return sessionId;
}

// Sends a message; resolves with the agent's final (not preamble, not streaming) reply after it.
async function say(page, message, expected) {
  const before = (await transcript(page)).filter((m) => m.from === "agent" && !m.preamble).length;
  await page.getByRole("textbox", { name: "Message" }).fill(message);
  await page.getByRole("button", { name: "Send" }).click();
  log(`customer> ${message}`);
  await page.waitForFunction(
    ({ before, expected }) => {
      const replies = [...document.querySelectorAll('.timeline li[data-from="agent"][data-preamble="false"]')].slice(before);
      return replies.some((li) => li.dataset.streaming === "false" && (li.querySelector(".text")?.textContent ?? "").includes(expected ?? ""));
    },
    { before, expected: expected ?? null },
    { timeout, polling: 100 },
  );
  const reply = (await transcript(page)).filter((m) => m.from === "agent" && !m.preamble).slice(before).at(-1);
  log(`agent> ${reply.text}`);
  return reply;
}

async function readInspector(page) {
  const inspector = page.locator(".inspector .trace");
  await inspector.waitFor({ timeout });
  // Wait for the parts loaded after the trace itself: the journey graph and the template text.
  await page.locator(".inspector [data-section='Composition']").waitFor({ timeout });
  // ... and until nothing is loading any more (the session's journey path, template texts).
  await page.waitForFunction(() => !document.querySelector(".inspector [data-loading]"), null, { timeout });
  return page.locator(".inspector").evaluate((root) => {
    const texts = (selector) => [...root.querySelectorAll(selector)].map((e) => e.textContent.trim());
    return {
      trace_id: root.dataset.traceId,
      final_guidelines: [...root.querySelectorAll("[data-list='final-guidelines'] [data-guideline-id]")].map((e) => e.dataset.guidelineId),
      applying_checks: [...root.querySelectorAll(".checks li[data-applies='true']")].map((e) => e.dataset.guidelineId),
      journeys: [...root.querySelectorAll(".journey-step")].map((j) => ({
        journey_id: j.dataset.journeyId,
        current_label: j.querySelector("[data-current-label]")?.textContent.trim() ?? null,
        graph_current: [...j.querySelectorAll(".journey-graph [data-current='true']")].map((g) => ({
          state_id: g.dataset.stateId,
          label: g.querySelector("title")?.textContent ?? "",
        })),
        visited: j.querySelectorAll(".journey-graph .state.visited").length,
        taken_edges: j.querySelectorAll(".journey-graph .edge.taken").length,
      })),
      tool_calls: [...root.querySelectorAll(".tool-call")].map((t) => ({
        tool_id: t.dataset.toolId,
        arguments: [...t.querySelectorAll("[data-argument]")].map((a) => ({
          name: a.dataset.argument,
          value: a.children[1]?.textContent ?? "",
          source: a.children[2]?.textContent.trim() ?? "",
        })),
      })),
      sent_templates: [...root.querySelectorAll("[data-list='sent-templates'] [data-template-id]")].map((t) => ({
        id: t.dataset.templateId,
        text: t.querySelector("div")?.textContent ?? "",
      })),
      stages: texts(".waterfall [data-stage] .stage-name"),
    };
  });
}

async function conversation(page) {
  const sessionId = await startSession(page);
  let last;
  for (const [i, message] of args.say.entries()) last = await say(page, message, args.expect[i]);
  if (args.screenshots) {
    await page.screenshot({ path: path.join(args.screenshots, "sandbox.png") });
    log("screenshot: sandbox.png");
  }

  // The inspector of the last reply, one click away.
  const lastReply = page.locator(`.timeline li[data-event-id="${last.event_id}"]`);
  await lastReply.getByRole("button", { name: "Inspect" }).click();
  await page.waitForURL(/\/traces\//, { timeout });
  // The journey graph and the template's text come in a moment after the trace.
  await page.locator(".inspector .journey-graph, .inspector [data-list='sent-templates'] div").first().waitFor({ timeout }).catch(() => {});
  const inspector = await readInspector(page);
  log(`inspector: ${JSON.stringify(inspector)}`);
  if (args.screenshots) {
    await page.screenshot({ path: path.join(args.screenshots, "inspector.png") });
    log("screenshot: inspector.png");
  }

  // Flag the reply, then read the list of flagged replies.
  let flags = null;
  if (args.flag !== undefined) {
    const flagButton = lastReply.getByRole("button", { name: "Flag", exact: true });
    if (await flagButton.isDisabled()) {
      flags = { available: false, why: await flagButton.getAttribute("title") };
    } else {
      await flagButton.click();
      await lastReply.getByRole("textbox", { name: "Flag note" }).fill(args.flag);
      await lastReply.getByRole("button", { name: "Save flag" }).click();
      await lastReply.locator(".flagged").waitFor({ timeout });
      await page.getByRole("link", { name: "Flagged" }).click();
      await page.locator(".flags li").first().waitFor({ timeout });
      const listed = await page.locator(".flags li").evaluateAll((items) =>
        items.map((li) => ({ flag_id: li.dataset.flagId, event_id: li.dataset.eventId, note: li.querySelector(".note")?.textContent ?? "" })),
      );
      flags = { available: true, listed };
      log(`flagged: ${JSON.stringify(listed)}`);
    }
  }

  // A reload of the session's page resumes it: the same conversation comes back.
  await page.goto(new URL(`/ui/sessions/${encodeURIComponent(sessionId)}`, server).href);
  await page.waitForFunction(
    (count) => document.querySelectorAll('.timeline li[data-kind="message"]').length >= count,
    (await transcript(page)).length || 1,
    { timeout },
  );
  const resumed = await transcript(page);
  log(`after a reload: ${resumed.length} messages`);
  return { session_id: sessionId, inspector, flags, resumed, url: page.url() };
}

async function streaming(page) {
  const sessionId = await startSession(page);
  await page.getByRole("textbox", { name: "Message" }).fill(args.say[0]);
  await page.getByRole("button", { name: "Send" }).click();
  log(`customer> ${args.say[0]}`);
  // Samples the first agent message on every animation frame until it is complete: the states
  // the page showed, and whether it stayed the same element (grown in place, not re-added).
  const states = await page.evaluate(
    (timeout) =>
      new Promise((resolve, reject) => {
        const seen = [];
        let element = null;
        let replaced = false;
        const deadline = performance.now() + timeout;
        const sample = () => {
          const li = document.querySelector('.timeline li[data-from="agent"][data-preamble="false"]');
          if (li) {
            if (element && li !== element) replaced = true;
            element = li;
            const state = { text: li.querySelector(".text")?.textContent ?? "", streaming: li.dataset.streaming, event_id: li.dataset.eventId };
            const prev = seen.at(-1);
            if (!prev || prev.text !== state.text || prev.streaming !== state.streaming) seen.push(state);
            if (state.streaming === "false") return resolve({ states: seen, replaced });
          }
          if (performance.now() > deadline) return reject(new Error(`no complete reply; saw ${JSON.stringify(seen)}`));
          requestAnimationFrame(sample);
        };
        sample();
      }),
    timeout,
  );
  log(`the reply went through ${states.states.length} states`);
  return { session_id: sessionId, ...states, transcript: await transcript(page) };
}

const browser = await chromium.launch({
  executablePath: args.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  // Nothing may leave the machine: only the server answers.
  await context.route("**/*", (route) => (new URL(route.request().url()).origin === server.origin ? route.continue() : route.abort()));
  if (args.key) {
    // Production mode: the key as the app keeps it after asking for it.
    await context.addInitScript((key) => sessionStorage.setItem("tactful.apiKey", key), args.key);
  }
  page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("response", (r) => r.status() >= 400 && problems.push(`response: ${r.status()} ${r.request().method()} ${r.url()}`));
  const result = args.scenario === "conversation" ? await conversation(page) : await streaming(page);
  for (const problem of problems) log(`note: ${problem}`);
  console.log(JSON.stringify({ ...result, problems }));
} catch (error) {
  log(`FAILED: ${error.message}`);
  if (page) {
    log(`what the page showed: ${JSON.stringify(await transcript(page).catch(() => []))}`);
    await page.screenshot({ path: args.failure, fullPage: true }).then(
      () => log(`screenshot: ${args.failure}`),
      (e) => log(`no screenshot: ${e.message}`),
    );
  }
  for (const problem of problems) log(problem);
  process.exitCode = 1;
} finally {
  await browser.close();
}
