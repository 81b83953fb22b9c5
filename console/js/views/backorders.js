// Backorders: where a waiting order stands in each product's waiting list (inventory knows it,
// not orders), and for staff a product's waiting list in the order it will be served.

import { api } from "../api.js";
import { errorBox, h, notice, table, when } from "../dom.js";

function productName(order, productId) {
  const line = order.lines.find((l) => l.product_id === productId);
  return line ? line.name : `Product ${productId}`;
}

// The order's missing units and its place per product; a problem reading them is said in the
// panel, not over the whole order page.
export async function backorderPanel(order) {
  let places;
  try {
    ({ data: places } = await api(`/api/backorders/${order.id}/`));
  } catch (error) {
    if (error.code === "session_expired") throw error;
    places = { lines: [], problem: error.message };
  }
  const rows = places.lines.map((line) =>
    h(
      "tr",
      { dataset: { productId: line.product_id } },
      h("td", {}, productName(order, line.product_id)),
      h("td", { class: "number", dataset: { units: "missing" } }, line.missing),
      h("td", { class: "number", dataset: { role: "place" } }, line.place ?? "—"),
    ),
  );
  return h(
    "section",
    { class: "card backorder", "aria-labelledby": "backorder-heading" },
    h("h2", { id: "backorder-heading" }, "Waiting for stock"),
    h("p", { class: "muted" }, "The units held are kept for this order. When the missing ones arrive, waiting orders are served in turn; this one is confirmed once it is complete."),
    places.problem ? errorBox(`Could not read the waiting lists: ${places.problem}`) : null,
    rows.length ? table(["Product", "Units missing", "Place in the waiting list"], rows, "Backordered units") : null,
  );
}

// Staff: the orders waiting for a product, in serving order.
export async function waitingListSection(product) {
  let waiting = [];
  let problem = null;
  try {
    const { data } = await api(`/api/products/${product.id}/backorders/`);
    waiting = Array.isArray(data) ? data : data.results || [];
  } catch (error) {
    if (error.code === "session_expired") throw error;
    problem = error.message; // said in the section; the rest of the product's page stands
  }
  const rows = waiting.map((entry) =>
    h(
      "tr",
      { class: entry.overdue ? "overdue" : "", dataset: { orderId: entry.order_id } },
      h("td", { class: "number", dataset: { role: "place" } }, entry.place),
      h("td", {}, h("a", { href: `#/orders/${entry.order_id}?from=staff` }, String(entry.order_id).slice(0, 8))),
      h("td", { class: "number", dataset: { units: "missing" } }, entry.quantity),
      h("td", {}, h("time", { datetime: entry.waiting_since }, when(entry.waiting_since))),
      h("td", {}, entry.overdue ? h("span", { class: "tag low" }, "Served first: waited too long") : ""),
    ),
  );
  return h(
    "section",
    { class: "card waiting-list", "aria-labelledby": "waiting-heading" },
    h("h2", { id: "waiting-heading" }, "Waiting list (backorders)"),
    product.allow_backorder ? null : h("p", { class: "muted" }, "This product does not take backorders now; orders already waiting stay in the list."),
    problem ? errorBox(`Could not read the waiting list: ${problem}`) : null,
    rows.length
      ? table(["Place", "Order", "Units missing", "Waiting since", ""], rows, "Waiting list")
      : problem ? null : notice("No order is waiting for this product."),
  );
}
