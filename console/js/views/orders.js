// Orders: the status changing from PENDING to its outcome as it happens, and the history.

import { api, query, session } from "../api.js";
import { actionButton, errorBox, h, money, notice, pager, replace, statusBadge, table, when } from "../dom.js";
import { backorderPanel } from "./backorders.js";
import { orderReturns, RETURNABLE, returnsPanel } from "./returns.js";
import { shippingPanel } from "./shipments.js";

const POLL_MS = 300;
const SLOW_POLL_MS = 2000;
const SLOW_AFTER_MS = 30000;
export const STATUSES = ["PENDING", "BACKORDERED", "CONFIRMED", "PARTIALLY_SHIPPED", "REJECTED", "CANCELLED", "SHIPPED"];
// Still changing without anyone acting on it: the page keeps asking (a backorder slowly).
const WAITING = ["PENDING", "BACKORDERED"];

export function shortId(id) {
  return String(id).slice(0, 8);
}

function productName(order, productId) {
  const line = order.lines.find((l) => l.product_id === productId);
  return line ? line.name : `Product ${productId}`;
}

// The outcome in plain words, e.g. "Out of stock: Mug (you asked for 3, 1 available)."
export function outcome(order) {
  switch (order.status) {
    case "PENDING":
      return { title: "Waiting for the stock to be reserved…", text: "This page updates by itself." };
    case "BACKORDERED":
      return { title: "Backordered", text: "Some units are out of stock: the order waits for them and is confirmed when they arrive." };
    case "CONFIRMED":
      return { title: "Confirmed", text: "The stock is reserved for this order." };
    case "PARTIALLY_SHIPPED":
      return { title: "Partly shipped", text: "Part of the order is on its way; the rest will follow." };
    case "SHIPPED":
      return { title: "Shipped", text: "The order is on its way." };
    case "CANCELLED":
      return { title: "Cancelled", text: order.cancellation_reason ? `Reason: ${order.cancellation_reason}.` : "" };
    case "REJECTED": {
      const lines = Array.isArray(order.rejected_lines) ? order.rejected_lines : [];
      const parts = lines.map((line) => {
        const name = productName(order, line.product_id);
        if (line.reason === "product is inactive") return `${name} is no longer sold`;
        if (line.reason === "unknown product") return `${name} is not in the catalogue`;
        return `${name}: out of stock (you asked for ${line.requested}, ${line.available} available)`;
      });
      const text = parts.length ? `${parts.join("; ")}.` : order.rejection_reason || "";
      return { title: "Rejected", text, reason: order.rejection_reason };
    }
    default:
      return { title: order.status, text: "" };
  }
}

function timeline(history) {
  if (!history || !history.length) return notice("No changes recorded yet.");
  return h(
    "ol",
    { class: "timeline", "aria-label": "Status history" },
    history.map((change) =>
      h(
        "li",
        {},
        h("span", { class: "timeline-status" }, change.from_status ? `${change.from_status} → ` : "", statusBadge(change.to_status)),
        change.reason ? h("span", { class: "timeline-reason" }, change.reason) : null,
        h("time", { datetime: change.at }, when(change.at)),
      ),
    ),
  );
}

// Cancel, and for staff Ship (everything left) unless `ship` is false (the order page ships
// from its shipping panel instead).
export function orderActions(order, onChange, { ship = true } = {}) {
  const user = session.user();
  const run = (action) => async () => {
    try {
      onChange(await api(`/api/orders/${order.id}/${action}/`, { method: "POST" }));
    } catch (error) {
      window.dispatchEvent(new CustomEvent("console-error", { detail: error.message }));
    }
  };
  const buttons = [];
  if (["PENDING", "BACKORDERED", "CONFIRMED", "PARTIALLY_SHIPPED"].includes(order.status)) {
    buttons.push(actionButton("Cancel order", run("cancel"), { class: "danger" }));
  }
  if (ship && user && user.is_staff && ["CONFIRMED", "PARTIALLY_SHIPPED"].includes(order.status)) {
    buttons.push(actionButton("Ship", run("ship"), { class: "primary" }));
  }
  return buttons;
}

export async function orderView(root, ctx) {
  const id = ctx.params[0];
  const started = Date.now();
  let stopped = false;
  let timer = null;
  let lastStatus = null;
  ctx.onLeave(() => {
    stopped = true;
    clearTimeout(timer);
  });
  const statusBox = h("section", { class: "card order-status", role: "status", "aria-live": "polite" });
  const problem = h("div");
  const details = h("div");
  const actions = h("div", { class: "actions" });
  const shipping = h("div");
  const backorder = h("div");
  const returns = h("div");
  const staff = Boolean(session.user()?.is_staff);
  let drawn = 0;

  // What other calls tell about the order: its places in the waiting lists while it is
  // backordered, its returns once something has shipped. Only the latest drawing lands.
  async function showExtras(order, returnsMessage) {
    const turn = ++drawn;
    const waiting = order.status === "BACKORDERED" ? await backorderPanel(order) : null;
    const returnsSection = RETURNABLE.includes(order.status)
      ? returnsPanel(order, await orderReturns(order.id), async (message) => show((await api(`/api/orders/${id}/`)).data, null, message), returnsMessage)
      : null;
    if (stopped || turn !== drawn) return;
    replace(backorder, waiting);
    replace(returns, returnsSection);
  }

  function show(order, shippedMessage, returnsMessage) {
    if (order.status !== lastStatus) {
      const result = outcome(order);
      replace(
        statusBox,
        h("p", { class: "status-line" }, "Status: ", statusBadge(order.status), order.status === "PENDING" ? h("span", { class: "spinner", "aria-hidden": "true" }) : null),
        h("p", { class: "outcome-title" }, h("strong", {}, result.title)),
        result.text ? h("p", { class: "outcome" }, result.text) : null,
        result.reason && result.reason !== result.text ? h("p", { class: "muted reason" }, `Reason given: ${result.reason}`) : null,
      );
      statusBox.dataset.status = order.status;
      lastStatus = order.status;
    }
    replace(actions, orderActions(order, async ({ data }) => show(data), { ship: !staff }));
    const shipsOrShipped = ["CONFIRMED", "PARTIALLY_SHIPPED", "SHIPPED"].includes(order.status) || (order.shipments || []).length > 0;
    if (staff) replace(shipping, shipsOrShipped ? shippingPanel(order, show, shippedMessage) : null);
    replace(
      details,
      table(
        ["Product", "Unit price", "Ordered", "Shipped", "Cancelled", "Returned", "Line total"],
        order.lines.map((line) =>
          h(
            "tr",
            { dataset: { productId: line.product_id } },
            h("td", {}, line.name, " ", h("small", { class: "muted" }, line.sku)),
            h("td", { class: "number" }, money(line.unit_price)),
            h("td", { class: "number", dataset: { units: "ordered" } }, line.quantity),
            h("td", { class: "number", dataset: { units: "shipped" } }, line.shipped_quantity ?? 0),
            h("td", { class: "number", dataset: { units: "cancelled" } }, line.cancelled_quantity ?? 0),
            h("td", { class: "number", dataset: { units: "returned" } }, line.returned_quantity ?? 0),
            h("td", { class: "number" }, money(line.line_total)),
          ),
        ),
        "Order lines",
      ),
      h("p", { class: "total" }, "Total: ", h("strong", {}, money(order.total))),
      Number(order.refunded_total) > 0 ? h("p", { class: "total refunded" }, "Refunded: ", h("strong", { dataset: { role: "refunded-total" } }, money(order.refunded_total))) : null,
      h("p", { class: "muted" }, `Placed ${when(order.created_at)}`, session.user()?.is_staff ? ` by customer #${order.user_id}` : ""),
      h("h2", {}, "Status history"),
      timeline(order.history),
    );
    showExtras(order, returnsMessage).catch((error) => {
      if (!stopped && error.code !== "session_expired") replace(returns, errorBox(error.message));
    });
  }

  async function poll() {
    if (stopped) return;
    try {
      const { data } = await api(`/api/orders/${id}/`);
      if (stopped) return;
      replace(problem);
      show(data);
      if (!WAITING.includes(data.status)) return;
    } catch (error) {
      if (stopped || error.code === "session_expired") return;
      replace(problem, errorBox(`Could not check the order just now: ${error.message} Retrying…`));
    }
    const slow = lastStatus === "BACKORDERED" || Date.now() - started > SLOW_AFTER_MS;
    timer = setTimeout(poll, slow ? SLOW_POLL_MS : POLL_MS);
  }

  const { data: order } = await api(`/api/orders/${id}/`);
  replace(
    root,
    h("p", {}, h("a", { href: session.user()?.is_staff && ctx.query.from === "staff" ? "#/staff/orders" : "#/orders" }, "← All orders")),
    h("h1", { tabindex: "-1" }, `Order ${shortId(order.id)}`),
    statusBox,
    problem,
    actions,
    backorder,
    details,
    returns,
    shipping,
  );
  show(order);
  if (WAITING.includes(order.status)) timer = setTimeout(poll, order.status === "PENDING" ? POLL_MS : SLOW_POLL_MS);
}

export function ordersTable(orders, { staff = false, onChange } = {}) {
  const rows = orders.map((order) =>
    h(
      "tr",
      { dataset: { orderId: order.id, status: order.status } },
      h("td", {}, h("a", { href: `#/orders/${order.id}${staff ? "?from=staff" : ""}` }, shortId(order.id))),
      staff ? h("td", { class: "number" }, `#${order.user_id}`) : null,
      h("td", {}, when(order.created_at)),
      h("td", {}, statusBadge(order.status)),
      h("td", { class: "number" }, order.lines.reduce((sum, l) => sum + l.quantity, 0)),
      h("td", { class: "number" }, money(order.total)),
      onChange ? h("td", { class: "row-actions" }, orderActions(order, onChange)) : null,
    ),
  );
  const headers = ["Order", ...(staff ? ["Customer"] : []), "Placed", "Status", "Items", "Total", ...(onChange ? ["Actions"] : [])];
  return table(headers, rows, "Orders");
}

export async function myOrdersView(root, ctx) {
  const cursor = ctx.query.cursor || "";
  const status = ctx.query.status || "";
  const { data } = await api(`/api/orders/${query({ cursor, status })}`);
  const select = h("select", { id: "my-status", name: "status" }, h("option", { value: "" }, "All"), STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)));
  select.addEventListener("change", () => ctx.navigate(`#/orders${query({ status: select.value })}`));
  replace(
    root,
    h("h1", { tabindex: "-1" }, "Your orders"),
    h("div", { class: "filters" }, h("label", { for: "my-status" }, "Status"), select),
    data.results.length ? ordersTable(data.results) : notice(status ? `No ${status.toLowerCase()} orders.` : "You have not ordered anything yet."),
    pager(data, (to) => ctx.navigate(`#/orders${query({ status, cursor: to })}`)),
  );
}
