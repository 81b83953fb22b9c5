// Building the page from data without innerHTML: text is always text, never markup.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      element.className = value;
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

let counter = 0;
export function uid(prefix = "field") {
  counter += 1;
  return `${prefix}-${counter}`;
}

// A labelled form control; `control` is an <input>, <select> or <textarea> element.
export function field(label, control, hint) {
  control.id = control.id || uid(control.name || "field");
  const hintId = hint ? `${control.id}-hint` : null;
  const errorId = `${control.id}-error`;
  control.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  return h(
    "div",
    { class: "field", dataset: { field: control.name || "" } },
    h("label", { for: control.id }, label),
    control,
    hint ? h("small", { id: hintId, class: "hint" }, hint) : null,
    h("small", { id: errorId, class: "field-error", role: "alert" }),
  );
}

// Show an API error's field messages beside the fields, and the summary in `summary`.
export function showFormErrors(form, error, summary) {
  for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  const errors = (error && error.errors) || {};
  for (const [name, messages] of Object.entries(errors)) {
    const control = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (!control) continue;
    control.setAttribute("aria-invalid", "true");
    const slot = form.querySelector(`#${CSS.escape(control.id)}-error`);
    if (slot) slot.textContent = [].concat(messages).map(String).join(" ");
  }
  if (summary) replace(summary, error ? errorBox(error.message) : null);
}

// On submit: `send()`; an API error it throws shows beside the fields and in `summary`.
export function onSubmit(form, summary, send) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await send();
    } catch (error) {
      showFormErrors(form, error, summary);
    }
  });
  return form;
}

export function errorBox(message, retry) {
  return h(
    "div",
    { class: "notice error", role: "alert" },
    h("p", {}, message),
    retry ? h("button", { type: "button", class: "secondary", onclick: retry }, "Try again") : null,
  );
}

export function notice(message, kind = "info") {
  return h("div", { class: `notice ${kind}`, role: "status" }, h("p", {}, message));
}

export function money(value) {
  const number = Number(value);
  return Number.isFinite(number) ? number.toFixed(2) : String(value ?? "");
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${String(status).toLowerCase()}` }, status);
}

export function table(headers, rows, caption) {
  return h(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption || "table" },
    h(
      "table",
      {},
      caption ? h("caption", { class: "visually-hidden" }, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows),
    ),
  );
}

// A button that runs `action` once at a time: disabled and marked busy until it settles.
export function actionButton(label, action, attributes = {}) {
  const button = h("button", { type: "button", ...attributes }, label);
  button.addEventListener("click", async () => {
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      await action(button);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });
  return button;
}

// Previous and Next through a list's `previous` and `next` links; `go` gets the link's cursor.
export function pager(data, go) {
  if (!data || (!data.next && !data.previous)) return null;
  const cursor = (link) => new URL(link, location.href).searchParams.get("cursor");
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", class: "secondary", disabled: !data.previous, onclick: () => go(cursor(data.previous)) }, "Previous"),
    h("button", { type: "button", class: "secondary", disabled: !data.next, onclick: () => go(cursor(data.next)) }, "Next"),
  );
}
