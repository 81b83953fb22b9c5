// Staff: each service's dead-letter queue, its count, the messages' contents, replay and purge.

import { api } from "../api.js";
import { actionButton, errorBox, h, notice, replace, when } from "../dom.js";

const SERVICES = ["inventory", "orders", "user-notification"];
const LIMIT = 50;

function firstLine(text) {
  return String(text || "").split("\n")[0];
}

function messageItem(service, message, done) {
  const base = `/api/dead-letters/${service}/${encodeURIComponent(message.id)}`;
  const replay = actionButton("Replay", async () => {
    try {
      await api(`${base}/replay/`, { method: "POST" });
      done(`Replayed message ${message.id.slice(0, 12)} to the ${service} queue.`);
    } catch (error) {
      done(error.message, true);
    }
  }, { class: "primary" });
  let armed = false;
  const purge = actionButton("Purge", async (button) => {
    if (!armed) {
      armed = true;
      button.textContent = "Confirm purge";
      setTimeout(() => {
        armed = false;
        button.textContent = "Purge";
      }, 5000);
      return;
    }
    try {
      await api(`${base}/purge/`, { method: "POST" });
      done(`Purged message ${message.id.slice(0, 12)} for good.`);
    } catch (error) {
      done(error.message, true);
    }
  }, { class: "danger" });
  return h(
    "li",
    { class: "dead-letter", dataset: { id: message.id } },
    h("p", {}, h("strong", {}, message.routing_key || "unknown type"), " · ", h("time", { datetime: message.dead_lettered_at }, when(message.dead_lettered_at)), message.attempts ? ` · ${message.attempts} attempt(s)` : ""),
    h("p", { class: "reason" }, firstLine(message.reason) || "No reason recorded."),
    h(
      "details",
      {},
      h("summary", {}, "Inspect"),
      h("p", { class: "muted" }, `Id ${message.id} · ${message.body_size} bytes`),
      message.reason && message.reason.includes("\n") ? h("pre", { class: "reason-full" }, message.reason) : null,
      h("h3", {}, "Body"),
      h("pre", { class: "body", tabindex: "0" }, message.body_preview || "(empty)"),
      message.body_truncated ? h("p", { class: "muted" }, "Only the first 10 KB are shown.") : null,
      h("h3", {}, "Headers"),
      h("pre", { class: "headers", tabindex: "0" }, JSON.stringify(message.headers, null, 2)),
    ),
    h("div", { class: "actions" }, replay, purge),
  );
}

function serviceSection(service) {
  const count = h("span", { class: "count", dataset: { count: service } }, "…");
  const status = h("div", { class: "section-status" }); // its notices are live regions
  const body = h("div");
  const headingId = `dlq-${service}`;
  const element = h(
    "section",
    { class: "card dlq", dataset: { service }, "aria-labelledby": headingId },
    h("div", { class: "heading-row" },
      h("h2", { id: headingId }, service, " ", count),
      h("button", { type: "button", class: "secondary", onclick: () => load() }, "Refresh")),
    status,
    body,
  );
  const done = (message, failed = false) => {
    replace(status, failed ? errorBox(message) : notice(message, "success"));
    load();
  };
  async function load() {
    element.setAttribute("aria-busy", "true");
    try {
      const { data } = await api(`/api/dead-letters/${service}/?limit=${LIMIT}`);
      count.textContent = data.count === 1 ? "1 message" : `${data.count} messages`;
      count.dataset.value = data.count;
      if (!data.count) {
        replace(body, notice("Empty: nothing is waiting for an operator.", "success"));
        return;
      }
      replace(
        body,
        data.messages.length < data.count ? h("p", { class: "muted" }, `Showing the first ${data.messages.length}.`) : null,
        h("ul", { class: "dead-letters" }, data.messages.map((m) => messageItem(service, m, done))),
      );
    } catch (error) {
      count.textContent = "unknown";
      delete count.dataset.value;
      replace(body, errorBox(error.message, () => load()));
    } finally {
      element.setAttribute("aria-busy", "false");
    }
  }
  return { element, load };
}

export async function deadLettersView(root) {
  const sections = SERVICES.map(serviceSection);
  replace(
    root,
    h("h1", { tabindex: "-1" }, "Dead-letter queues"),
    h("p", { class: "muted" }, "Messages a service could not process. Inspect one, fix the cause, then replay it; purge what can never succeed."),
    sections.map((s) => s.element),
  );
  await Promise.all(sections.map((s) => s.load()));
}
