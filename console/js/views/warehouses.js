// Staff: warehouses in allocation order; adding one, renaming, reprioritising, (de)activating.

import { api } from "../api.js";
import { actionButton, field, h, notice, onSubmit, replace, showFormErrors, statusBadge, table, uid } from "../dom.js";

// Every warehouse (the API pages them; staff create few), in allocation order.
export async function warehouses() {
  const { data } = await api("/api/warehouses/?page_size=200");
  return data.results;
}

export function warehouseLabel(code, known) {
  const found = known.find((w) => w.code === code);
  if (!found) return code || "unknown warehouse";
  return `${found.name} (${found.code})${found.active ? "" : ", inactive"}`;
}

// A control in a table cell: its label is read out, not shown; its error shows under it.
function cellField(label, control) {
  control.id = control.id || uid(control.name || "cell");
  control.setAttribute("aria-describedby", `${control.id}-error`);
  return h(
    "div",
    { class: "cell-field" },
    h("label", { for: control.id, class: "visually-hidden" }, label),
    control,
    h("small", { id: `${control.id}-error`, class: "field-error", role: "alert" }),
  );
}

function priorityInput(value) {
  return h("input", { name: "priority", type: "number", step: "1", inputmode: "numeric", value: String(value), required: true });
}

function warehouseRow(warehouse, summary, onSaved) {
  const name = h("input", { name: "name", required: true, maxlength: "100", value: warehouse.name });
  const priority = priorityInput(warehouse.priority);
  const row = h("tr", { class: warehouse.active ? "" : "inactive", dataset: { code: warehouse.code } });
  // `body` is the change, or a function reading it from the row when the button is pressed.
  const save = (body, done) => async () => {
    try {
      const payload = typeof body === "function" ? body() : body;
      const { data } = await api(`/api/warehouses/${warehouse.id}/`, { method: "PATCH", body: payload });
      onSaved(done(data));
    } catch (error) {
      showFormErrors(row, error, summary);
      if (summary.firstChild) summary.firstChild.prepend(h("strong", {}, `${warehouse.code}: `));
    }
  };
  const edit = save(
    () => ({ name: name.value.trim(), priority: Number(priority.value) }),
    (saved) => `Saved ${saved.code}: ${saved.name}, priority ${saved.priority}.`,
  );
  replace(
    row,
    h("td", {}, h("code", {}, warehouse.code)),
    h("td", {}, cellField(`Name of ${warehouse.code}`, name)),
    h("td", { class: "number" }, cellField(`Priority of ${warehouse.code}`, priority)),
    h("td", {}, statusBadge(warehouse.active ? "ACTIVE" : "INACTIVE")),
    h(
      "td",
      {},
      h(
        "div",
        { class: "row-actions" },
        actionButton("Save", edit, { class: "primary", "aria-label": `Save ${warehouse.code}` }),
      actionButton(
        warehouse.active ? "Deactivate" : "Activate",
        save({ active: !warehouse.active }, (saved) => `${saved.code} is ${saved.active ? "active again" : "inactive: it keeps its stock and gets no new orders"}.`),
        { class: warehouse.active ? "danger" : "secondary", "aria-label": `${warehouse.active ? "Deactivate" : "Activate"} ${warehouse.code}` },
        ),
      ),
    ),
  );
  return row;
}

function createForm(onCreated) {
  const code = h("input", { name: "code", required: true, maxlength: "32", autocomplete: "off", placeholder: "east-1" });
  const name = h("input", { name: "name", required: true, maxlength: "100" });
  const priority = priorityInput(0);
  const active = h("input", { name: "active", type: "checkbox", checked: true, id: "new-warehouse-active" });
  const summary = h("div");
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "new-warehouse-heading", novalidate: true },
    h("h2", { id: "new-warehouse-heading" }, "New warehouse"),
    summary,
    h("div", { class: "grid-2" },
      field("Code", code, "Letters, digits, '-' and '_'. It names the warehouse for good."),
      field("Warehouse name", name),
      field("Priority", priority, "Orders take stock from the highest priority first."),
    ),
    h("div", { class: "field checkbox" }, active, h("label", { for: active.id }, "Active (new orders may take its stock)")),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create warehouse")),
  );
  return onSubmit(form, summary, async () => {
    const body = { code: code.value.trim(), name: name.value.trim(), active: active.checked };
    if (priority.value.trim() !== "") body.priority = Number(priority.value);
    const { data } = await api("/api/warehouses/", { method: "POST", body });
    onCreated(data);
  });
}

export async function warehousesView(root, ctx) {
  const list = await warehouses();
  const summary = h("div");
  const saved = (message) => {
    ctx.flash(message, "success");
    ctx.reload();
  };
  replace(
    root,
    h("h1", { tabindex: "-1" }, "Warehouses"),
    h("p", { class: "muted" }, "Listed in the order new orders take stock from them: the highest priority first, then the oldest."),
    summary,
    list.length
      ? table(["Code", "Name", "Priority", "Status", "Actions"], list.map((w) => warehouseRow(w, summary, saved)), "Warehouses")
      : notice("No warehouses yet."),
    createForm((created) => saved(`Created warehouse ${created.code} (${created.name}).`)),
  );
}
