// Staff, on an order's page: where its units are held (per product and warehouse), what has
// shipped from where, and shipping from one warehouse (all its units left, or some) or the rest.

import { api } from "../api.js";
import { actionButton, errorBox, field, h, notice, replace, showFormErrors, table, when } from "../dom.js";

const SHIPPABLE = ["CONFIRMED", "PARTIALLY_SHIPPED"];

function productName(order, productId) {
  const line = order.lines.find((l) => l.product_id === productId);
  return line ? line.name : `Product ${productId}`;
}

function shippedLines(order, lines) {
  return lines.map((line) => `${line.quantity} × ${productName(order, line.product_id)}`).join(", ");
}

// The allocations with units not shipped yet, grouped by warehouse code, in the order given.
function unitsLeft(order) {
  const byWarehouse = new Map();
  for (const allocation of order.allocations || []) {
    const left = allocation.quantity - allocation.shipped_quantity;
    if (left <= 0) continue;
    if (!byWarehouse.has(allocation.warehouse)) byWarehouse.set(allocation.warehouse, []);
    byWarehouse.get(allocation.warehouse).push({ productId: allocation.product_id, left });
  }
  return byWarehouse;
}

function allocationTable(order) {
  if (!order.allocations || !order.allocations.length) {
    return notice("Where inventory holds this order's units is not known (yet).");
  }
  const rows = order.allocations.map((a) =>
    h(
      "tr",
      { dataset: { productId: a.product_id, warehouse: a.warehouse } },
      h("td", {}, productName(order, a.product_id)),
      h("td", {}, h("code", {}, a.warehouse)),
      h("td", { class: "number", dataset: { units: "allocated" } }, a.quantity),
      h("td", { class: "number", dataset: { units: "shipped" } }, a.shipped_quantity),
      h("td", { class: "number", dataset: { units: "left" } }, a.quantity - a.shipped_quantity),
    ),
  );
  return table(["Product", "Warehouse", "Allocated", "Shipped", "Left"], rows, "Allocation");
}

function shipmentsTable(order) {
  if (!order.shipments || !order.shipments.length) return notice("Nothing has shipped yet.");
  const rows = order.shipments.map((s) =>
    h(
      "tr",
      { dataset: { shipmentId: s.id, warehouse: s.warehouse || "" } },
      h("td", {}, h("time", { datetime: s.created_at }, when(s.created_at))),
      h("td", {}, s.warehouse ? h("code", {}, s.warehouse) : "not known"),
      h("td", {}, shippedLines(order, s.lines)),
      h("td", {}, s.actor_user_id ? `staff #${s.actor_user_id}` : "—"),
    ),
  );
  return table(["When", "From", "What", "By"], rows, "Shipments");
}

// One warehouse's units left, each editable; all of them unchanged ships everything left there.
function shipFromForm(order, code, items, summary, shipped) {
  const inputs = items.map((item) => ({
    item,
    input: h("input", { name: `quantity-${item.productId}`, type: "number", min: "0", max: String(item.left), step: "1", value: String(item.left), inputmode: "numeric" }),
  }));
  const form = h(
    "form",
    { class: "ship-from inline-form", dataset: { warehouse: code }, "aria-label": `Ship from ${code}` },
    inputs.map(({ item, input }) => field(`Units of ${productName(order, item.productId)} from ${code} (${item.left} left)`, input)),
    h("button", { type: "submit", class: "primary" }, `Ship from ${code}`),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = inputs.map(({ item, input }) => ({ product_id: item.productId, quantity: Number(input.value || 0), left: item.left }));
    const body = { warehouse: code };
    if (chosen.some((c) => c.quantity !== c.left)) {
      body.lines = chosen.filter((c) => c.quantity > 0).map(({ product_id, quantity }) => ({ product_id, quantity }));
      if (!body.lines.length) {
        replace(summary, errorBox(`Choose at least one unit to ship from ${code}.`));
        return;
      }
    }
    try {
      await api(`/api/orders/${order.id}/shipments/`, { method: "POST", body });
      await shipped(`Shipped from ${code}.`);
    } catch (error) {
      showFormErrors(form, error, summary);
    }
  });
  return form;
}

// `show(order, message)` draws the order again, this panel included, with `message` in it.
export function shippingPanel(order, show, message) {
  const summary = h("div", {}, message ? notice(message, "success") : null);
  const shipped = async (text) => {
    const { data } = await api(`/api/orders/${order.id}/`);
    show(data, text);
  };
  const left = unitsLeft(order);
  const shippable = SHIPPABLE.includes(order.status);
  const rest = order.status === "PARTIALLY_SHIPPED" ? "Ship the rest" : "Ship everything";
  return h(
    "section",
    { class: "card shipping", "aria-labelledby": "shipping-heading" },
    h("h2", { id: "shipping-heading" }, "Allocation and shipments"),
    summary,
    h("h3", {}, "Where the units are held"),
    allocationTable(order),
    h("h3", {}, "Shipments"),
    shipmentsTable(order),
    shippable
      ? [
          h("h3", {}, "Ship"),
          [...left.entries()].map(([code, items]) => shipFromForm(order, code, items, summary, shipped)),
          h(
            "div",
            { class: "actions" },
            actionButton(rest, async () => {
              try {
                const { data } = await api(`/api/orders/${order.id}/ship/`, { method: "POST" });
                show(data, "Shipped everything left.");
              } catch (error) {
                replace(summary, errorBox(error.message));
              }
            }),
          ),
        ]
      : null,
  );
}
