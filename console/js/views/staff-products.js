// Staff: products with on hand / reserved / available (in all and per warehouse), low stock,
// editing, adjustments in a chosen warehouse, transfers between warehouses, ledger.

import { api, query } from "../api.js";
import { actionButton, errorBox, field, h, money, notice, onSubmit, pager, replace, showFormErrors, table, when } from "../dom.js";
import { waitingListSection } from "./backorders.js";
import { warehouseLabel, warehouses } from "./warehouses.js";

const DEFAULT_WAREHOUSE = "default";

function isLow(product) {
  return product.low_stock_threshold > 0 && product.available < product.low_stock_threshold;
}

async function categories() {
  const { data } = await api("/api/categories/?page_size=200");
  return data.results;
}

function categoryForm(onSaved) {
  const name = h("input", { name: "name", required: true, maxlength: "100" });
  const summary = h("div");
  const form = h("form", { class: "inline-form" }, summary, field("New category", name), h("button", { type: "submit", class: "secondary" }, "Add category"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("/api/categories/", { method: "POST", body: { name: name.value.trim() } });
      onSaved();
    } catch (error) {
      showFormErrors(form, error, summary);
    }
  });
  return form;
}

export async function staffProductsView(root, ctx) {
  const cursor = ctx.query.cursor || "";
  const [{ data }, cats] = await Promise.all([api(`/api/products/${query({ cursor, page_size: 100 })}`), categories()]);
  const lowCount = data.results.filter(isLow).length;
  const rows = data.results.map((p) =>
    h(
      "tr",
      { class: isLow(p) ? "low" : p.available <= 0 ? "empty" : "", dataset: { sku: p.sku, productId: p.id } },
      h("td", {}, h("a", { href: `#/staff/products/${p.id}` }, p.sku)),
      h("td", {}, p.name, p.active ? "" : h("small", { class: "muted" }, " (inactive)")),
      h("td", {}, p.category_name || "—"),
      h("td", { class: "number" }, money(p.price)),
      h("td", { class: "number" }, p.on_hand),
      h("td", { class: "number" }, p.reserved),
      h("td", { class: "number available" }, p.available, isLow(p) ? h("span", { class: "tag low" }, "Low stock") : null),
      h("td", { class: "number", dataset: { level: "backordered" } }, p.allow_backorder ? p.backordered ?? 0 : "not taken"),
      h("td", { class: "number" }, p.low_stock_threshold),
      h("td", {}, h("a", { class: "button small secondary", href: `#/staff/products/${p.id}` }, "Manage")),
    ),
  );
  replace(
    root,
    h("div", { class: "heading-row" }, h("h1", { tabindex: "-1" }, "Products and stock"), h("a", { class: "button", href: "#/staff/products/new" }, "New product")),
    lowCount ? notice(`${lowCount} product(s) below their low-stock threshold are highlighted.`, "warning") : null,
    rows.length
      ? table(["SKU", "Name", "Category", "Price", "On hand", "Reserved", "Available", "Backordered", "Low below", ""], rows, "Products")
      : notice("No products yet. Create the first one."),
    pager(data, (to) => ctx.navigate(`#/staff/products${query({ cursor: to })}`)),
    h("section", { class: "card" },
      h("h2", {}, "Categories"),
      cats.length ? h("p", {}, cats.map((c) => c.name).join(", ")) : h("p", { class: "muted" }, "No categories yet."),
      categoryForm(() => ctx.reload())),
  );
}

function productForm(product, cats, onSaved) {
  const value = (name, fallback = "") => (product && product[name] !== undefined && product[name] !== null ? String(product[name]) : fallback);
  const sku = h("input", { name: "sku", required: true, maxlength: "64", value: value("sku") });
  const name = h("input", { name: "name", required: true, maxlength: "200", value: value("name") });
  const description = h("textarea", { name: "description", rows: "3" }, value("description"));
  const price = h("input", { name: "price", required: true, inputmode: "decimal", pattern: "\\d+(\\.\\d{1,2})?", value: value("price") });
  const category = h(
    "select",
    { name: "category" },
    h("option", { value: "" }, "No category"),
    cats.map((c) => h("option", { value: c.id, selected: product && product.category === c.id }, c.name)),
  );
  const threshold = h("input", { name: "low_stock_threshold", type: "number", min: "0", step: "1", value: value("low_stock_threshold", "0") });
  const active = h("input", { name: "active", type: "checkbox", checked: product ? product.active : true });
  const backorders = h("input", { name: "allow_backorder", type: "checkbox", checked: product ? Boolean(product.allow_backorder) : false });
  const summary = h("div");
  const form = h(
    "form",
    { class: "card product-form" },
    h("h2", {}, product ? "Edit product" : "New product"),
    summary,
    h("div", { class: "grid-2" },
      field("SKU", sku),
      field("Name", name),
      field("Price", price, "For example 12.50"),
      field("Category", category),
      field("Low-stock threshold", threshold, "Highlighted when fewer than this many are available."),
    ),
    field("Description", description),
    h("div", { class: "field checkbox" }, active, h("label", { for: (active.id = `active-${product ? product.id : "new"}`) }, "For sale (active)")),
    h("div", { class: "field checkbox" }, backorders, h("label", { for: (backorders.id = `allow-backorder-${product ? product.id : "new"}`) }, "Take backorders (orders wait for stock instead of being rejected)")),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, product ? "Save changes" : "Create product")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      sku: sku.value.trim(),
      name: name.value.trim(),
      description: description.value,
      price: price.value.trim(),
      category: category.value ? Number(category.value) : null,
      low_stock_threshold: Number(threshold.value || 0),
      active: active.checked,
      allow_backorder: backorders.checked,
    };
    try {
      const { data } = await api(product ? `/api/products/${product.id}/` : "/api/products/", { method: product ? "PATCH" : "POST", body });
      onSaved(data);
    } catch (error) {
      showFormErrors(form, error, summary);
    }
  });
  return form;
}

export async function newProductView(root, ctx) {
  const cats = await categories();
  replace(
    root,
    h("p", {}, h("a", { href: "#/staff/products" }, "← Products")),
    h("h1", { tabindex: "-1" }, "New product"),
    productForm(null, cats, (product) => {
      ctx.flash(`Created ${product.name}. Add its stock below.`, "success");
      ctx.navigate(`#/staff/products/${product.id}`);
    }),
  );
}

function warehouseSelect(name, known, selected) {
  return h(
    "select",
    { name, required: true },
    known.map((w) => h("option", { value: w.code, selected: w.code === selected }, warehouseLabel(w.code, known))),
  );
}

function adjustmentForm(product, known, onDone) {
  const delta = h("input", { name: "delta", type: "number", step: "1", required: true, inputmode: "numeric" });
  const reason = h("input", { name: "reason", required: true, maxlength: "500", placeholder: "delivery, breakage, stocktake…" });
  const warehouse = warehouseSelect("warehouse", known, DEFAULT_WAREHOUSE);
  const summary = h("div");
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "adjust-heading" },
    h("h2", { id: "adjust-heading" }, "Adjust stock"),
    summary,
    h("div", { class: "grid-2" },
      field("Change in units on hand", delta, "Positive for a delivery, negative for breakage or a count difference."),
      field("Reason", reason),
      field("In warehouse", warehouse)),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Record adjustment")),
  );
  return onSubmit(form, summary, async () => {
    try {
      const { data } = await api(`/api/products/${product.id}/stock-adjustments/`, {
        method: "POST",
        body: { delta: Number(delta.value), reason: reason.value.trim(), warehouse: warehouse.value },
      });
      onDone(data);
    } catch (error) {
      if (error.status === 400 && /on_hand|negative|check/i.test(error.message)) {
        error.message = "That would take the stock below zero or below what is reserved for orders.";
      }
      throw error;
    }
  });
}

// Moving units between two warehouses; the source keeps what is reserved there.
function transferForm(product, known, levelsByCode, onDone) {
  const withStock = known.filter((w) => (levelsByCode[w.code]?.available || 0) > 0);
  const source = warehouseSelect("from_warehouse", known, (withStock[0] || known[0] || {}).code);
  const target = warehouseSelect("to_warehouse", known, (known.find((w) => w.code !== source.value) || {}).code);
  const quantity = h("input", { name: "quantity", type: "number", min: "1", step: "1", required: true, inputmode: "numeric" });
  const reason = h("input", { name: "reason", required: true, maxlength: "500", placeholder: "rebalancing, a new site…" });
  const summary = h("div");
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "transfer-heading" },
    h("h2", { id: "transfer-heading" }, "Move stock between warehouses"),
    summary,
    h("div", { class: "grid-2" },
      field("From warehouse", source, "Only units available there (not reserved for orders) can move."),
      field("To warehouse", target),
      field("Units to move", quantity),
      field("Why they move", reason)),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Move stock")),
  );
  return onSubmit(form, summary, async () => {
    const { data } = await api("/api/stock-transfers/", {
      method: "POST",
      body: {
        product: product.id,
        from_warehouse: source.value,
        to_warehouse: target.value,
        quantity: Number(quantity.value),
        reason: reason.value.trim(),
      },
    });
    onDone(data);
  });
}

// The product's stock in each warehouse: those holding some, and the active ones at zero.
function warehouseLevels(product, known) {
  const byCode = Object.fromEntries(product.warehouses.map((level) => [level.warehouse, level]));
  const codes = [...known.filter((w) => byCode[w.code] || w.active).map((w) => w.code), ...Object.keys(byCode).filter((code) => !known.some((w) => w.code === code))];
  const rows = codes.map((code) => {
    const level = byCode[code] || { on_hand: 0, reserved: 0, available: 0 };
    return h(
      "tr",
      { dataset: { warehouse: code } },
      h("th", { scope: "row" }, warehouseLabel(code, known)),
      h("td", { class: "number", dataset: { level: "on_hand" } }, level.on_hand),
      h("td", { class: "number", dataset: { level: "reserved" } }, level.reserved),
      h("td", { class: "number", dataset: { level: "available" } }, level.available),
    );
  });
  return h("section", { class: "card" },
    h("h2", {}, "Stock by warehouse"),
    rows.length ? table(["Warehouse", "On hand", "Reserved", "Available"], rows, "Stock by warehouse") : notice("No warehouse holds this product yet."));
}

function levels(product) {
  return h(
    "dl",
    { class: `levels ${isLow(product) ? "low" : ""}`, "aria-label": "Stock levels" },
    h("div", {}, h("dt", {}, "On hand"), h("dd", { dataset: { level: "on_hand" } }, product.on_hand)),
    h("div", {}, h("dt", {}, "Reserved"), h("dd", { dataset: { level: "reserved" } }, product.reserved)),
    h("div", {}, h("dt", {}, "Available"), h("dd", { dataset: { level: "available" } }, product.available)),
    h("div", {}, h("dt", {}, "Backordered"), h("dd", { dataset: { level: "backordered" } }, product.backordered ?? 0)),
    h("div", {}, h("dt", {}, "Low below"), h("dd", {}, product.low_stock_threshold)),
  );
}

export async function staffProductView(root, ctx) {
  const id = ctx.params[0];
  const [{ data: product }, { data: ledger }, cats, known] = await Promise.all([
    api(`/api/products/${id}/`),
    api(`/api/products/${id}/ledger/?page_size=100`),
    categories(),
    warehouses(),
  ]);
  const waiting = await waitingListSection(product);
  const levelsByCode = Object.fromEntries(product.warehouses.map((level) => [level.warehouse, level]));
  const reload = () => ctx.reload();
  const entries = ledger.results.map((e) =>
    h(
      "tr",
      {},
      h("td", {}, h("time", { datetime: e.created_at }, when(e.created_at))),
      h("td", {}, e.kind),
      h("td", {}, e.warehouse),
      h("td", { class: "number" }, e.delta_on_hand > 0 ? `+${e.delta_on_hand}` : e.delta_on_hand),
      h("td", { class: "number" }, e.delta_reserved > 0 ? `+${e.delta_reserved}` : e.delta_reserved),
      h("td", {}, e.reason),
      h("td", {}, e.order_id ? h("a", { href: `#/orders/${e.order_id}?from=staff` }, String(e.order_id).slice(0, 8)) : "—"),
    ),
  );
  replace(
    root,
    h("p", {}, h("a", { href: "#/staff/products" }, "← Products")),
    h("h1", { tabindex: "-1" }, `${product.name} `, h("small", { class: "muted" }, product.sku)),
    isLow(product) ? notice(`Low stock: ${product.available} available, threshold ${product.low_stock_threshold}.`, "warning") : null,
    levels(product),
    product.allow_backorder ? h("p", { class: "tag-line" }, h("span", { class: "badge status-backordered" }, "Takes backorders")) : null,
    warehouseLevels(product, known),
    waiting,
    adjustmentForm(product, known, (result) => {
      ctx.flash(`Stock adjusted in ${result.warehouse.warehouse}: ${result.on_hand} on hand, ${result.available} available in all.`, "success");
      reload();
    }),
    known.length > 1
      ? transferForm(product, known, levelsByCode, (result) => {
          const from = result.from_warehouse;
          const to = result.to_warehouse;
          ctx.flash(`Moved ${result.quantity} from ${from.warehouse} (${from.available} available now) to ${to.warehouse} (${to.available} available now).`, "success");
          reload();
        })
      : null,
    h("section", { class: "card" },
      h("h2", {}, "Stock ledger"),
      entries.length ? table(["When", "Kind", "Warehouse", "On hand", "Reserved", "Reason", "Order"], entries, "Stock ledger") : notice("No stock movements yet."),
      ledger.next ? h("p", { class: "muted" }, "Showing the latest 100 movements.") : null),
    productForm(product, cats, (saved) => {
      ctx.flash(`Saved ${saved.name}.`, "success");
      reload();
    }),
  );
}
