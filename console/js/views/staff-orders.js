// Staff: every order, filtered by status and customer, with ship and cancel.

import { api, query } from "../api.js";
import { field, h, notice, pager, replace } from "../dom.js";
import { ordersTable, STATUSES } from "./orders.js";

export async function staffOrdersView(root, ctx) {
  const cursor = ctx.query.cursor || "";
  const status = ctx.query.status || "";
  const userId = ctx.query.user_id || "";
  const { data } = await api(`/api/orders/${query({ cursor, status, user_id: userId })}`);
  const statusSelect = h("select", { name: "status" }, h("option", { value: "" }, "Any status"), STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)));
  const customer = h("input", { name: "user_id", type: "number", min: "1", step: "1", value: userId, inputmode: "numeric" });
  const form = h(
    "form",
    { class: "filters card", role: "search", "aria-label": "Filter orders" },
    field("Status", statusSelect),
    field("Customer id", customer),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Filter"), h("a", { class: "button secondary", href: "#/staff/orders" }, "Clear")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.navigate(`#/staff/orders${query({ status: statusSelect.value, user_id: customer.value.trim() })}`);
  });
  replace(
    root,
    h("h1", { tabindex: "-1" }, "All orders"),
    form,
    // The service counts up to 1000 orders; beyond that a total would read every one of them.
    h("p", { class: "muted" }, data.count === null ? "More than 1000 orders" : `${data.count} order(s)`),
    data.results.length
      ? ordersTable(data.results, { staff: true, onChange: () => ctx.reload() })
      : notice("No orders match these filters."),
    pager(data, (to) => ctx.navigate(`#/staff/orders${query({ status, user_id: userId, cursor: to })}`)),
  );
}
