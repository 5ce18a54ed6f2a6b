// askmark's page: plain DOM over the /v1 API; no framework, no CDN. Attempts live in this
// browser's localStorage only.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { results: [], active: -1, question: null, timer: null, searchSeq: 0 };

class ApiError extends Error {
  constructor(problem) {
    super(problem.title || "Request failed");
    this.problem = problem;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : null;
  if (!response.ok) {
    throw new ApiError(body || { title: `HTTP ${response.status}`, detail: "" });
  }
  return body;
}

function showError(error) {
  const box = $("error");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  const problem = error.problem || { title: "The server could not be reached", detail: String(error.message || error) };
  box.textContent = problem.detail ? `${problem.title}: ${problem.detail}` : problem.title;
  box.hidden = false;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

/** The snippet text with the matched byte ranges wrapped in <mark>. */
function highlighted(snippet) {
  const bytes = new TextEncoder().encode(snippet.text);
  const decode = (from, to) => new TextDecoder().decode(bytes.slice(from, to));
  const fragment = document.createDocumentFragment();
  let at = 0;
  for (const [start, end] of snippet.highlights) {
    fragment.append(decode(at, start), element("mark", {}, decode(start, end)));
    at = end;
  }
  fragment.append(decode(at, bytes.length));
  return fragment;
}

const MATCHED = { lexical: "matched words", semantic: "matched meaning", both: "words + meaning" };
const RELATED_BADGES = { follow_up: "follow-up", leads_here: "leads here", similar: "similar" };

function renderResults(data) {
  const list = $("results");
  list.replaceChildren();
  state.results = data.results;
  state.active = -1;
  const searched = data.corrected_query ? `Showing results for "${data.corrected_query}". ` : "";
  $("status").textContent = data.results.length
    ? `${searched}${data.total} matches, showing ${data.results.length} (${data.took_ms.toFixed(0)} ms)`
    : data.hint || "No matching questions.";
  for (const hit of data.results) {
    const badges = element("div", { class: "badges" },
      element("span", { class: `badge ${hit.matched_by}`, title: `lexical rank ${hit.lexical_rank ?? "-"}, semantic rank ${hit.semantic_rank ?? "-"}` }, MATCHED[hit.matched_by]),
      element("span", { class: "badge" }, hit.topic),
      element("span", { class: "badge" }, hit.difficulty));
    list.append(element("li", { "data-id": hit.id },
      element("a", { href: `#/q/${encodeURIComponent(hit.id)}` }, hit.question),
      element("p", { class: "snippet" }, highlighted(hit.snippet)),
      badges));
  }
}

async function runSearch() {
  const query = $("q").value.trim();
  const sequence = ++state.searchSeq;
  if (!query) {
    $("results").replaceChildren();
    $("status").textContent = "";
    showError(null);
    return;
  }
  const params = new URLSearchParams({ q: query, limit: "10" });
  if ($("topic").value) params.set("topic", $("topic").value);
  if ($("difficulty").value) params.set("difficulty", $("difficulty").value);
  try {
    const data = await api(`/v1/search?${params}`);
    if (sequence !== state.searchSeq) return;
    showError(null);
    renderResults(data);
  } catch (error) {
    if (sequence === state.searchSeq) showError(error);
  }
}

function scheduleSearch() {
  clearTimeout(state.timer);
  state.timer = setTimeout(runSearch, 200);
}

function attemptsKey(id) {
  return `askmark.attempts.${id}`;
}

function loadAttempts(id) {
  try {
    return JSON.parse(localStorage.getItem(attemptsKey(id)) || "[]");
  } catch {
    return [];
  }
}

function renderAttempts(id) {
  const attempts = loadAttempts(id);
  $("attempts-box").hidden = attempts.length === 0;
  $("attempts").replaceChildren(...attempts.map((attempt) =>
    element("li", {}, `${attempt.score} (${attempt.grade.replace("_", " ")}), ${new Date(attempt.at).toLocaleString()}`)));
}

async function openQuestion(id) {
  try {
    const [question, related] = await Promise.all([
      api(`/v1/questions/${encodeURIComponent(id)}`),
      api(`/v1/questions/${encodeURIComponent(id)}/related?limit=5`),
    ]);
    showError(null);
    state.question = question;
    $("q-text").textContent = question.question;
    $("q-topic").textContent = question.topic;
    $("q-difficulty").textContent = question.difficulty;
    $("q-answer").textContent = question.answer;
    $("reference").open = false;
    $("q-keypoints").replaceChildren(...question.key_points.map((point) => element("li", {}, point)));
    $("related").replaceChildren(...related.results.map((hit) =>
      element("li", {}, element("a", { href: `#/q/${encodeURIComponent(hit.id)}` }, hit.question),
        " ", element("span", { class: "badge" }, RELATED_BADGES[hit.reason]),
        element("span", { class: "why" }, hit.why))));
    $("answer").value = "";
    $("review").hidden = true;
    renderAttempts(id);
    $("question-panel").hidden = false;
    document.body.classList.add("question-open");
    $("q-text").setAttribute("tabindex", "-1");
    $("q-text").focus();
  } catch (error) {
    showError(error);
  }
}

function closeQuestion() {
  $("question-panel").hidden = true;
  document.body.classList.remove("question-open");
  state.question = null;
  if (location.hash.startsWith("#/q/")) history.replaceState(null, "", "#/");
  $("q").focus();
}

function renderReview(verdict) {
  $("r-score").textContent = `${verdict.score}/100`;
  $("r-grade").textContent = verdict.grade.replace("_", " ");
  $("r-grade").className = `band ${verdict.grade}`;
  $("r-flags").replaceChildren(...verdict.flags.map((flag) => element("span", { class: "flag" }, flag.replace("_", " "))));
  $("r-feedback").textContent = verdict.feedback;
  $("r-keypoints").replaceChildren(...verdict.key_points.map((point) => {
    const status = point.covered === true ? "covered" : point.covered === "partially" ? "partially" : "missed";
    const label = { covered: "Covered", partially: "Partly covered", missed: "Missed" }[status];
    const item = element("li", { class: status }, element("strong", {}, `${label}: `), point.point);
    if (point.evidence) item.append(element("span", { class: "evidence" }, `“${point.evidence}”`));
    return item;
  }));
  $("r-contradictions").replaceChildren(...verdict.contradictions.map((contradiction) =>
    element("li", { class: "contradiction" }, element("strong", {}, "States a common mistake: "), contradiction.misconception,
      element("span", { class: "evidence" }, `“${contradiction.evidence}”`))));
  $("r-contradictions").hidden = verdict.contradictions.length === 0;
  $("review").hidden = false;
}

async function submitAnswer(event) {
  event.preventDefault();
  if (!state.question) return;
  const id = state.question.id;
  const button = $("submit");
  button.disabled = true;
  try {
    const verdict = await api("/v1/review", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ question_id: id, answer: $("answer").value }),
    });
    showError(null);
    renderReview(verdict);
    const attempts = [{ score: verdict.score, grade: verdict.grade, at: Date.now() }, ...loadAttempts(id)].slice(0, 20);
    localStorage.setItem(attemptsKey(id), JSON.stringify(attempts));
    renderAttempts(id);
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

async function randomQuestion() {
  const params = new URLSearchParams({ limit: "200" });
  if ($("topic").value) params.set("topic", $("topic").value);
  try {
    const list = await api(`/v1/questions?${params}`);
    if (!list.items.length) return;
    const pick = list.items[Math.floor(Math.random() * list.items.length)];
    location.hash = `#/q/${encodeURIComponent(pick.id)}`;
  } catch (error) {
    showError(error);
  }
}

function route() {
  const match = location.hash.match(/^#\/q\/(.+)$/);
  if (match) openQuestion(decodeURIComponent(match[1]));
  else if (!$("question-panel").hidden) closeQuestion();
}

function moveActive(step) {
  const items = [...$("results").children];
  if (!items.length) return;
  state.active = (state.active + step + items.length) % items.length;
  items.forEach((item, index) => item.classList.toggle("active", index === state.active));
  items[state.active].scrollIntoView({ block: "nearest" });
}

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  if (event.key === "/" && !typing) {
    event.preventDefault();
    $("q").focus();
  } else if (event.key === "Escape" && !$("question-panel").hidden) {
    closeQuestion();
  }
});

$("q").addEventListener("keydown", (event) => {
  if (event.key === "ArrowDown") { event.preventDefault(); moveActive(1); }
  if (event.key === "ArrowUp") { event.preventDefault(); moveActive(-1); }
});
$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const hit = state.results[Math.max(state.active, 0)];
  if (hit) location.hash = `#/q/${encodeURIComponent(hit.id)}`;
});
$("q").addEventListener("input", scheduleSearch);
$("topic").addEventListener("change", runSearch);
$("difficulty").addEventListener("change", runSearch);
$("random").addEventListener("click", randomQuestion);
$("close").addEventListener("click", closeQuestion);
$("practice-form").addEventListener("submit", submitAnswer);
window.addEventListener("hashchange", route);

api("/v1/topics")
  .then((data) => {
    for (const topic of data.topics) {
      $("topic").append(element("option", { value: topic.id }, `${topic.title} (${topic.questions})`));
    }
  })
  .catch(showError);
route();
