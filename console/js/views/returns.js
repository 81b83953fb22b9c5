// Returns: on an order's page, its returns and asking for one (units shipped and not yet in a
// return, with a reason); for staff, the returns waiting to be received and receiving one into
// a warehouse, each line's units restocked or damaged, with the refund it gives.

import { api, query, session } from "../api.js";
import { errorBox, field, h, money, notice, pager, replace, showFormErrors, statusBadge, table, when } from "../dom.js";
import { warehouseLabel, warehouses } from "./warehouses.js";

export const RETURNABLE = ["PARTIALLY_SHIPPED", "SHIPPED"];
const RETURN_STATUSES = ["REQUESTED", "RECEIVED"];

export function returnShortId(id) {
  return /^\d+$/.test(String(id)) ? `#${id}` : String(id).slice(0, 8);
}

export async function orderReturns(orderId) {
  const { data } = await api(`/api/orders/${orderId}/returns/`);
  return Array.isArray(data) ? data : data.results || [];
}

function units(lines) {
  return lines.map((line) => `${line.quantity} × ${line.name || `Product ${line.product_id}`}`).join(", ");
}

// Per product: units shipped and in no return yet (requested or received), the most one may ask for.
export function returnableUnits(order, returns) {
  const taken = new Map();
  for (const ret of returns) {
    for (const line of ret.lines) taken.set(line.product_id, (taken.get(line.product_id) || 0) + line.quantity);
  }
  return order.lines
    .map((line) => ({ line, left: (line.shipped_quantity ?? 0) - (taken.get(line.product_id) || 0) }))
    .filter(({ left }) => left > 0);
}

function returnsTable(returns, { staff }) {
  const rows = returns.map((ret) =>
    h(
      "tr",
      { dataset: { returnId: ret.id, status: ret.status } },
      h("td", {}, staff ? h("a", { href: `#/staff/returns/${ret.id}` }, returnShortId(ret.id)) : returnShortId(ret.id)),
      h("td", {}, h("time", { datetime: ret.requested_at }, when(ret.requested_at))),
      h("td", {}, statusBadge(ret.status)),
      h("td", {}, units(ret.lines)),
      h("td", {}, ret.reason),
      h("td", { class: "number", dataset: { role: "refund" } }, ret.refund_amount === null || ret.refund_amount === undefined ? "—" : money(ret.refund_amount)),
    ),
  );
  return table(["Return", "Requested", "Status", "Units", "Reason", "Refund"], rows, "The order's returns");
}

function requestForm(order, returnable, summary, done) {
  const inputs = returnable.map(({ line, left }) => ({
    line,
    input: h("input", { name: `quantity-${line.product_id}`, type: "number", min: "0", max: String(left), step: "1", value: "0", inputmode: "numeric" }),
    left,
  }));
  const reason = h("input", { name: "reason", required: true, maxlength: "500", placeholder: "damaged in transit, wrong size…" });
  const form = h(
    "form",
    { class: "return-request", "aria-label": "Return items" },
    h("div", { class: "grid-2" },
      inputs.map(({ line, input, left }) => field(`Units of ${line.name} to return (up to ${left})`, input)),
      field("Why they come back", reason)),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Request return")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const lines = inputs
      .map(({ line, input }) => ({ product_id: line.product_id, quantity: Math.floor(Number(input.value) || 0) }))
      .filter((line) => line.quantity > 0);
    if (!lines.length) {
      replace(summary, errorBox("Choose at least one unit to return."));
      return;
    }
    try {
      const { data } = await api(`/api/orders/${order.id}/returns/`, { method: "POST", body: { lines, reason: reason.value.trim() } });
      await done(`Return ${returnShortId(data.id)} requested: ${units(data.lines)}.`);
    } catch (error) {
      showFormErrors(form, error, summary);
    }
  });
  return form;
}

// The order's returns and, while units are returnable, a "Return items" form behind a button.
// `done(message)` draws the order again with `message`.
export function returnsPanel(order, returns, done, message) {
  const staff = Boolean(session.user()?.is_staff);
  const summary = h("div", {}, message ? notice(message, "success") : null);
  const returnable = RETURNABLE.includes(order.status) ? returnableUnits(order, returns) : [];
  const slot = h("div");
  const open = h("button", { type: "button", class: "secondary", "aria-expanded": "false" }, "Return items");
  open.addEventListener("click", () => {
    const opening = open.getAttribute("aria-expanded") !== "true";
    open.setAttribute("aria-expanded", String(opening));
    replace(slot, opening ? requestForm(order, returnable, summary, done) : null);
    slot.querySelector("input")?.focus();
  });
  if (!returns.length && !returnable.length && !message) return null;
  return h(
    "section",
    { class: "card returns", "aria-labelledby": "returns-heading" },
    h("h2", { id: "returns-heading" }, "Returns"),
    summary,
    returns.length ? returnsTable(returns, { staff }) : h("p", { class: "muted" }, "Nothing returned yet."),
    returnable.length ? [h("div", { class: "actions" }, open), slot] : null,
  );
}

// Staff: the returns, those waiting to be received first.
export async function staffReturnsView(root, ctx) {
  // Waiting returns unless asked otherwise; "all" is every status.
  const status = ctx.query.status === "all" ? "" : ctx.query.status ?? "REQUESTED";
  const cursor = ctx.query.cursor || "";
  const { data } = await api(`/api/returns/${query({ status, cursor })}`);
  const select = h("select", { id: "return-status", name: "status" },
    h("option", { value: "", selected: status === "" }, "All"),
    RETURN_STATUSES.map((s) => h("option", { value: s, selected: s === status }, s === "REQUESTED" ? "Waiting to be received" : "Received")));
  select.addEventListener("change", () => ctx.navigate(`#/staff/returns${query({ status: select.value || "all" })}`));
  const rows = data.results.map((ret) =>
    h(
      "tr",
      { dataset: { returnId: ret.id, orderId: ret.order_id, status: ret.status } },
      h("td", {}, h("a", { href: `#/staff/returns/${ret.id}` }, returnShortId(ret.id))),
      h("td", {}, h("a", { href: `#/orders/${ret.order_id}?from=staff` }, String(ret.order_id).slice(0, 8))),
      h("td", { class: "number" }, `#${ret.user_id}`),
      h("td", {}, h("time", { datetime: ret.requested_at }, when(ret.requested_at))),
      h("td", {}, statusBadge(ret.status)),
      h("td", {}, units(ret.lines)),
      h("td", {}, ret.reason),
      h("td", {}, ret.status === "REQUESTED" ? h("a", { class: "button small", href: `#/staff/returns/${ret.id}` }, "Receive") : money(ret.refund_amount)),
    ),
  );
  replace(
    root,
    h("h1", { tabindex: "-1" }, "Returns"),
    h("div", { class: "filters" }, h("label", { for: "return-status" }, "Show"), select),
    rows.length
      ? table(["Return", "Order", "Customer", "Requested", "Status", "Units", "Reason", ""], rows, "Returns")
      : notice(status === "REQUESTED" ? "No returns are waiting to be received." : "No returns."),
    pager(data, (to) => ctx.navigate(`#/staff/returns${query({ status: status || "all", cursor: to })}`)),
  );
}

function receiveForm(ret, known, summary, received) {
  const active = known.filter((w) => w.active);
  const warehouse = h("select", { name: "warehouse", required: true }, active.map((w) => h("option", { value: w.code }, warehouseLabel(w.code, known))));
  const inputs = ret.lines.map((line) => ({
    line,
    restocked: h("input", { name: `restocked-${line.product_id}`, type: "number", min: "0", max: String(line.quantity), step: "1", value: String(line.quantity), inputmode: "numeric" }),
    damaged: h("input", { name: `damaged-${line.product_id}`, type: "number", min: "0", max: String(line.quantity), step: "1", value: "0", inputmode: "numeric" }),
  }));
  const form = h(
    "form",
    { class: "card receive", "aria-label": "Receive the return" },
    h("h2", {}, "Receive the return"),
    h("p", { class: "muted" }, "Restocked units go back on hand in the warehouse chosen; damaged ones are written off. Both are refunded."),
    field("Into warehouse", warehouse),
    inputs.map(({ line, restocked, damaged }) =>
      h("fieldset", { class: "grid-2", dataset: { productId: line.product_id } },
        h("legend", {}, `${line.name} (${line.quantity} returned at ${money(line.unit_price)})`),
        field(`Units of ${line.name} restocked`, restocked),
        field(`Units of ${line.name} damaged`, damaged))),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Receive return")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const lines = inputs.map(({ line, restocked, damaged }) => ({
      product_id: line.product_id,
      restocked: Math.floor(Number(restocked.value) || 0),
      damaged: Math.floor(Number(damaged.value) || 0),
    }));
    const over = ret.lines.find((line, index) => lines[index].restocked + lines[index].damaged > line.quantity);
    if (over) {
      replace(summary, errorBox(`${over.name}: at most ${over.quantity} unit(s) came back.`));
      return;
    }
    if (!lines.some((line) => line.restocked + line.damaged > 0)) {
      replace(summary, errorBox("Receive at least one unit."));
      return;
    }
    try {
      const { data } = await api(`/api/returns/${ret.id}/receive/`, { method: "POST", body: { warehouse: warehouse.value, lines } });
      received(data);
    } catch (error) {
      showFormErrors(form, error, summary);
    }
  });
  return form;
}

function returnLines(ret) {
  const rows = ret.lines.map((line) =>
    h(
      "tr",
      { dataset: { productId: line.product_id } },
      h("td", {}, line.name, " ", h("small", { class: "muted" }, line.sku)),
      h("td", { class: "number" }, money(line.unit_price)),
      h("td", { class: "number", dataset: { units: "requested" } }, line.quantity),
      h("td", { class: "number", dataset: { units: "restocked" } }, line.restocked ?? 0),
      h("td", { class: "number", dataset: { units: "damaged" } }, line.damaged ?? 0),
    ),
  );
  return table(["Product", "Unit price", "Returned", "Restocked", "Damaged"], rows, "Returned units");
}

// Staff: one return, and receiving it while it is REQUESTED.
export async function staffReturnView(root, ctx) {
  const id = ctx.params[0];
  const [{ data: ret }, known] = await Promise.all([api(`/api/returns/${id}/`), warehouses()]);
  const summary = h("div");
  const received = ret.status === "RECEIVED";
  replace(
    root,
    h("p", {}, h("a", { href: "#/staff/returns" }, "← Returns")),
    h("h1", { tabindex: "-1" }, `Return ${returnShortId(ret.id)} `, statusBadge(ret.status)),
    summary,
    h("section", { class: "card return-summary", dataset: { status: ret.status } },
      h("p", {}, "Order ", h("a", { href: `#/orders/${ret.order_id}?from=staff` }, String(ret.order_id).slice(0, 8)), ` of customer #${ret.user_id}`),
      h("p", {}, "Reason: ", ret.reason),
      h("p", { class: "muted" }, `Requested ${when(ret.requested_at)}`, received ? ` · received ${when(ret.received_at)} into ${warehouseLabel(ret.warehouse, known)}` : ""),
      received ? h("p", { class: "refund" }, "Refund: ", h("strong", { dataset: { role: "refund" } }, money(ret.refund_amount))) : null),
    returnLines(ret),
    received
      ? null
      : receiveForm(ret, known, summary, (data) => {
          ctx.flash(`Return ${returnShortId(data.id)} received: ${money(data.refund_amount)} refunded.`, "success");
          ctx.reload();
        }),
  );
}
