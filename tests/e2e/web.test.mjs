// The web page in Debian's headless Chromium against a real release server (ASKMARK_URL):
// search, open, follow a related link, practise and get reviewed, an error, keyboard and phone
// width. Screenshots go to tests/e2e/screenshots/ (git-ignored).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const BASE = process.env.ASKMARK_URL;
const SHOTS = new URL("./screenshots/", import.meta.url).pathname;
let browser;
let page;

before(async () => {
  assert.ok(BASE, "ASKMARK_URL must point at a running askmark server");
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
});

after(async () => {
  await browser?.close();
});

test("search as you type, open with the keyboard, follow a related question", async () => {
  await page.goto(BASE);
  await page.waitForSelector("#topic option:nth-child(2)", { state: "attached" });
  await page.keyboard.press("/");
  assert.equal(await page.evaluate(() => document.activeElement.id), "q");
  await page.keyboard.type("how does asyncio differ from threads");
  await page.waitForSelector("#results li");
  const titles = await page.locator("#results li a").allTextContents();
  assert.ok(titles.slice(0, 3).some((t) => /asyncio/i.test(t)), titles.join(" | "));
  assert.ok(await page.locator("#results .badge.both, #results .badge.lexical, #results .badge.semantic").count() > 0);
  assert.ok(await page.locator("#results mark").count() > 0, "snippets highlight the query words");
  await page.screenshot({ path: `${SHOTS}search.png`, fullPage: true });

  await page.keyboard.press("Enter");
  await page.waitForSelector("#question-panel:not([hidden])");
  const first = await page.locator("#q-text").textContent();
  assert.equal(first, titles[0]);
  await page.locator("#reference summary").click();
  assert.ok((await page.locator("#q-answer").textContent()).length > 200);
  assert.ok(await page.locator("#q-keypoints li").count() >= 3);
  await page.screenshot({ path: `${SHOTS}question.png`, fullPage: true });

  const reasons = await page.locator("#related .why").allTextContents();
  assert.ok(reasons.length > 0 && reasons.every((why) => why.trim().length > 0), "every related question says why");
  const related = page.locator("#related a").first();
  const relatedTitle = await related.textContent();
  await related.click();
  await page.waitForFunction((title) => document.getElementById("q-text").textContent === title, relatedTitle);
  assert.notEqual(relatedTitle, first);

  await page.keyboard.press("Escape");
  await page.waitForSelector("#question-panel", { state: "hidden" });
});

test("a query about nothing in the corpus says so instead of listing weak matches", async () => {
  await page.goto(BASE);
  await page.fill("#q", "how do I bake sourdough bread");
  await page.waitForFunction(() => /Nothing in the corpus matches/.test(document.getElementById("status").textContent));
  assert.equal(await page.locator("#results li").count(), 0);
});

test("a misspelt query says what it searched for", async () => {
  await page.goto(BASE);
  await page.fill("#q", "garbge colection");
  await page.waitForFunction(() => /Showing results for "garbage collection"/.test(document.getElementById("status").textContent));
  assert.equal(await page.locator("#results li").first().getAttribute("data-id"), "garbage-collection");
});

test("filters restrict the results", async () => {
  await page.goto(BASE);
  await page.waitForSelector("#topic option:nth-child(2)", { state: "attached" });
  await page.selectOption("#topic", "concurrency");
  await page.fill("#q", "memory");
  await page.waitForSelector("#results li");
  const topics = await page.locator("#results li .badge:nth-child(2)").allTextContents();
  assert.ok(topics.length > 0 && topics.every((t) => t === "concurrency"), topics.join(","));
});

test("practise: submit an answer, see the review, keep the answer and the attempts", async () => {
  await page.goto(`${BASE}/#/q/gil`);
  await page.waitForSelector("#question-panel:not([hidden])");
  await page.evaluate(() => localStorage.clear());
  const answer = "The GIL is a mutex in CPython that lets only one thread execute Python bytecode at a time, so threads " +
    "do not speed up CPU-bound code, but they help with I/O-bound work because blocking I/O releases the GIL. " +
    "It does not make code thread-safe, so you still need locks; for CPU-bound work use multiprocessing.";
  await page.fill("#answer", answer);
  await page.click("#submit");
  await page.waitForSelector("#review:not([hidden])");
  const score = Number((await page.locator("#r-score").textContent()).split("/")[0]);
  assert.ok(score >= 40, `a decent answer scores ${score}`);
  assert.ok(await page.locator("#r-keypoints li.covered").count() >= 2);
  assert.ok(await page.locator("#r-keypoints li.missed, #r-keypoints li.partially").count() >= 1);
  assert.ok(await page.locator("#r-keypoints .evidence").count() >= 1, "covered points quote the answer");
  assert.equal(await page.inputValue("#answer"), answer, "the answer stays in the box");
  await page.screenshot({ path: `${SHOTS}review.png`, fullPage: true });

  await page.fill("#answer", answer + " Python 3.13 added an experimental free-threaded build without the GIL.");
  await page.click("#submit");
  await page.waitForFunction(() => document.querySelectorAll("#attempts li").length === 2);
  const stored = await page.evaluate(() => JSON.parse(localStorage.getItem("askmark.attempts.gil")).length);
  assert.equal(stored, 2);
});

test("a contradiction is shown with the sentence that states it", async () => {
  await page.goto(`${BASE}/#/q/gil`);
  await page.waitForSelector("#question-panel:not([hidden])");
  const wrong = "The GIL used to serialize threads in CPython. But Python 3.13 removed the GIL completely, so every " +
    "standard CPython build now runs threads in parallel on all cores. Threads are therefore the right tool for CPU-bound work.";
  await page.fill("#answer", wrong);
  await page.click("#submit");
  await page.waitForSelector("#review:not([hidden])");
  await page.waitForSelector("#r-contradictions:not([hidden]) li");
  const evidence = await page.locator("#r-contradictions .evidence").first().textContent();
  assert.match(evidence, /removed the GIL completely/, evidence);
});

test("a refused request shows the server's problem title", async () => {
  await page.goto(`${BASE}/#/q/gil`);
  await page.waitForSelector("#question-panel:not([hidden])");
  await page.fill("#answer", "   ");
  await page.click("#submit");
  await page.waitForSelector("#error:not([hidden])");
  assert.match(await page.locator("#error").textContent(), /^Invalid answer/);
  await page.screenshot({ path: `${SHOTS}error.png`, fullPage: true });
});

test("readable at phone width", async () => {
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
  await phone.goto(`${BASE}/#/q/decorators`);
  await phone.waitForSelector("#question-panel:not([hidden])");
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (overflow ${overflow}px)`);
  await phone.screenshot({ path: `${SHOTS}phone.png`, fullPage: true });
  await phone.close();
});
