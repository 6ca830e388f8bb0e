// Holds a conversation through Parlant's chat widget in headless Chromium (playwright-core).
//
// Usage: node widget.mjs --page <page URL> --say <message> [--expect <reply text>] ...
//          [--chromium /usr/bin/chromium] [--timeout <ms per reply>] [--screenshot <png path>]
//
// Each --say is typed into the widget and sent; the script then waits until an agent message
// containing the matching --expect (or, without one, any new agent message) shows in the widget.
// It prints what it sees to stderr and, when the conversation succeeded, one JSON line on stdout:
// {"session_id": ..., "transcript": [{"from": "You" | <agent name>, "text": ...}, ...]}.
// On failure it saves a screenshot, prints what went wrong (with the browser's console errors and
// failed requests) and exits with status 1.
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: args } = parseArgs({
  options: {
    page: { type: "string" },
    say: { type: "string", multiple: true, default: [] },
    expect: { type: "string", multiple: true, default: [] },
    chromium: { type: "string", default: process.env.TACTFUL_E2E_CHROMIUM || "/usr/bin/chromium" },
    timeout: { type: "string", default: "60000" },
    screenshot: {
      type: "string",
      default: path.join(tmpdir(), `tactful-widget-failure-${process.pid}.png`),
    },
  },
});

if (!args.page || args.say.length === 0) {
  console.error("usage: node widget.mjs --page <url> --say <message> [--expect <text>] ...");
  process.exit(2);
}
if (args.expect.length !== 0 && args.expect.length !== args.say.length) {
  console.error("give one --expect per --say, or none");
  process.exit(2);
}

const pageUrl = new URL(args.page);
const server = new URL(pageUrl.searchParams.get("server"));
const timeout = Number(args.timeout);
// The widget also asks for Google Fonts; nothing may leave the machine, so only these answer.
const allowedOrigins = new Set([pageUrl.origin, server.origin]);
const problems = [];
const started = Date.now();
const log = (line) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`);

// Every message the widget shows, in order: who sent it ("You" is the customer) and its text.
async function transcript(page) {
  return page.locator('[role="group"][aria-label^="Message from "]').evaluateAll((groups) =>
    groups.map((g) => ({
      from: g.getAttribute("aria-label").slice("Message from ".length),
      text: g.querySelector('[aria-live]')?.innerText.trim() ?? "",
    })),
  );
}

// Resolves once an agent message at index >= `after` (counted among agent messages) contains
// `expected`, or exists at all when nothing is expected.
function waitForReply(page, after, expected) {
  return page.waitForFunction(
    ({ after, expected }) => {
      const replies = [...document.querySelectorAll('[role="group"][aria-label^="Message from "]')]
        .filter((g) => g.getAttribute("aria-label") !== "Message from You")
        .slice(after)
        .map((g) => g.querySelector("[aria-live]")?.innerText ?? "");
      return expected === null ? replies.some((t) => t.trim()) : replies.some((t) => t.includes(expected));
    },
    { after, expected },
    { timeout, polling: 100 },
  );
}

async function agentMessageCount(page) {
  return (await transcript(page)).filter((m) => m.from !== "You").length;
}

async function converse(page) {
  await page.goto(pageUrl.href);
  log(`opened ${pageUrl.href}`);
  await page.locator(".open-chat").click();
  const textbox = page.getByRole("textbox", { name: "Type your message" });
  await textbox.waitFor({ timeout });
  log("opened the chat");

  for (const [i, message] of args.say.entries()) {
    const expected = args.expect[i] ?? null;
    const before = await agentMessageCount(page);
    await textbox.fill(message);
    await page.getByRole("button", { name: "Send message" }).click();
    log(`customer> ${message}`);
    try {
      await waitForReply(page, before, expected);
    } catch (error) {
      const wanted = expected === null ? "reply" : `reply containing ${JSON.stringify(expected)}`;
      throw new Error(`no ${wanted} within ${timeout} ms after ${JSON.stringify(message)}`, {
        cause: error,
      });
    }
    for (const reply of (await transcript(page)).filter((m) => m.from !== "You").slice(before)) {
      log(`${reply.from}> ${reply.text}`);
    }
  }
  // Set by the page's onSessionCreated once the widget created the session and posted to it.
  await page.waitForFunction(() => document.body.dataset.sessionId, null, { timeout });
  return {
    session_id: await page.evaluate(() => document.body.dataset.sessionId),
    transcript: await transcript(page),
  };
}

const browser = await chromium.launch({
  executablePath: args.chromium,
  headless: true,
  // playwright-core gives every launch a fresh temporary user-data-dir.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let page;
try {
  const context = await browser.newContext();
  await context.route("**/*", (route) =>
    allowedOrigins.has(new URL(route.request().url()).origin) ? route.continue() : route.abort(),
  );
  page = await context.newPage();
  page.on("console", (m) => {
    // The fonts the widget asks for are refused on purpose (see allowedOrigins).
    const from = m.location().url;
    if (m.type() === "error" && (!from || allowedOrigins.has(new URL(from).origin))) {
      problems.push(`console: ${m.text()}`);
    }
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => {
    if (allowedOrigins.has(new URL(r.url()).origin)) {
      problems.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`);
    }
  });
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`response: ${r.status()} ${r.request().method()} ${r.url()}`);
  });
  const result = await converse(page);
  for (const problem of problems) log(`note: ${problem}`);
  console.log(JSON.stringify(result));
} catch (error) {
  log(`FAILED: ${error.message}`);
  if (page) {
    log(`what the widget showed: ${JSON.stringify(await transcript(page).catch(() => []))}`);
    await page.screenshot({ path: args.screenshot, fullPage: true }).then(
      () => log(`screenshot: ${args.screenshot}`),
      (e) => log(`no screenshot: ${e.message}`),
    );
  }
  for (const problem of problems) log(problem);
  process.exitCode = 1;
} finally {
  await browser.close();
}
