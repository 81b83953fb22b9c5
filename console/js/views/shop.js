// The customer's side of the shop: the catalogue with availability, and the cart's checkout.

import { api, query } from "../api.js";
import { cart } from "../cart.js";
import { actionButton, errorBox, field, h, money, notice, pager, replace, table } from "../dom.js";

const REFRESH_MS = 3000;
const PAGE_SIZE = 48;

export function availability(product) {
  if (!product.active) return { text: "No longer sold", kind: "out" };
  if (product.available <= 0) {
    // Ordered anyway, it waits for the next delivery in a first-come, first-served list.
    if (product.allow_backorder) return { text: "Out of stock: order now, it ships when stock arrives", kind: "backorder" };
    return { text: "Out of stock", kind: "out" };
  }
  if (product.low_stock_threshold && product.available < product.low_stock_threshold) {
    return { text: `Only ${product.available} left`, kind: "low" };
  }
  return { text: `${product.available} in stock`, kind: "in" };
}

function productCard(product, announce) {
  const quantity = h("input", { name: "quantity", type: "number", min: "1", step: "1", value: "1", inputmode: "numeric" });
  const state = availability(product);
  const stock = h("p", { class: `stock ${state.kind}`, dataset: { role: "availability" } }, state.text);
  const add = h("button", { type: "submit", disabled: state.kind === "out" }, "Add to cart");
  const form = h(
    "form",
    { class: "add-to-cart" },
    field(["Quantity", h("span", { class: "visually-hidden" }, ` of ${product.name}`)], quantity),
    add,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const amount = Math.max(1, Math.floor(Number(quantity.value) || 1));
    cart.add(product, amount);
    announce(`Added ${amount} × ${product.name} to the cart.`);
  });
  const card = h(
    "li",
    { class: "card product", dataset: { sku: product.sku, productId: product.id } },
    h("h2", {}, product.name),
    h("p", { class: "muted" }, product.sku, product.category_name ? ` · ${product.category_name}` : ""),
    product.description ? h("p", {}, product.description) : null,
    h("p", { class: "price" }, money(product.price)),
    stock,
    form,
  );
  // Updated in place by the periodic refresh, so a quantity being typed is kept.
  card.update = (fresh) => {
    const next = availability(fresh);
    stock.className = `stock ${next.kind}`;
    stock.textContent = next.text;
    add.disabled = next.kind === "out";
  };
  return card;
}

export async function catalogueView(root, ctx) {
  const cursor = ctx.query.cursor || "";
  const path = `/api/products/${query({ active: "true", cursor, page_size: PAGE_SIZE })}`;
  const { data } = await api(path);
  const announcer = h("div", { class: "announcer", role: "status", "aria-live": "polite" });
  const announce = (message) => replace(announcer, notice(message, "success"));
  const problem = h("div");
  const cards = new Map(data.results.map((p) => [p.id, productCard(p, announce)]));
  replace(
    root,
    h("div", { class: "heading-row" },
      h("h1", { tabindex: "-1" }, "Catalogue"),
      h("a", { class: "button secondary", href: "#/cart" }, "Go to cart")),
    h("p", { class: "muted" }, "Availability updates by itself every few seconds."),
    announcer,
    problem,
    cards.size
      ? h("ul", { class: "product-grid" }, [...cards.values()])
      : notice("There is nothing for sale yet."),
    pager(data, (to) => ctx.navigate(`#/shop${query({ cursor: to })}`)),
  );
  let timer = setInterval(async () => {
    try {
      const { data: fresh } = await api(path);
      replace(problem);
      for (const product of fresh.results) cards.get(product.id)?.update(product);
    } catch (error) {
      replace(problem, errorBox(`Availability may be out of date: ${error.message}`));
    }
  }, REFRESH_MS);
  ctx.onLeave(() => clearInterval(timer));
}

function orderErrors(error, lines) {
  const perLine = (error.errors && Array.isArray(error.errors.lines) && error.errors.lines) || [];
  const messages = perLine
    .map((problems, index) => {
      if (!problems || typeof problems !== "object" || !lines[index]) return null;
      const text = Object.values(problems).flat().join(" ");
      return text ? `${lines[index].name}: ${text}` : null;
    })
    .filter(Boolean);
  return messages.length ? `This order cannot be placed. ${messages.join(" ")}` : error.message;
}

export async function cartView(root, ctx) {
  const lines = cart.lines();
  if (!lines.length) {
    replace(
      root,
      h("h1", { tabindex: "-1" }, "Your cart"),
      notice("Your cart is empty."),
      h("p", {}, h("a", { class: "button", href: "#/shop" }, "Browse the catalogue")),
    );
    return;
  }
  const levels = await Promise.all(
    lines.map((line) => api(`/api/products/${line.product_id}/`).then((r) => r.data, () => null)),
  );
  const summary = h("div", { role: "alert" });
  const rows = lines.map((line, index) => {
    const quantity = h("input", { name: "quantity", type: "number", min: "0", step: "1", value: String(line.quantity), inputmode: "numeric", "aria-label": `Quantity of ${line.name}` });
    quantity.addEventListener("change", () => {
      cart.setQuantity(line.product_id, Math.max(0, Math.floor(Number(quantity.value) || 0)));
      cartView(root, ctx);
    });
    const level = levels[index];
    const warning = level && line.quantity > level.available
      ? h("small", { class: "stock low" }, level.allow_backorder
          ? `${Math.max(level.available, 0)} available now: the rest is backordered until stock arrives`
          : level.available > 0 ? `Only ${level.available} available now` : "Out of stock now")
      : null;
    return h(
      "tr",
      { dataset: { productId: line.product_id } },
      h("td", {}, line.name, h("br"), h("small", { class: "muted" }, line.sku)),
      h("td", { class: "number" }, money(line.price)),
      h("td", {}, quantity, warning ? h("br") : null, warning),
      h("td", { class: "number" }, money(Number(line.price) * line.quantity)),
      h("td", {}, h("button", { type: "button", class: "secondary", onclick: () => { cart.remove(line.product_id); cartView(root, ctx); } }, "Remove")),
    );
  });
  const place = actionButton("Place order", async () => {
    replace(summary);
    const key = cart.checkoutKey(); // the same key for every try of this checkout
    try {
      const { data: order } = await api("/api/orders/", {
        method: "POST",
        headers: { "Idempotency-Key": key },
        body: { lines: lines.map((l) => ({ product_id: l.product_id, quantity: l.quantity })) },
      });
      cart.clear();
      ctx.navigate(`#/orders/${order.id}`);
    } catch (error) {
      replace(summary, errorBox(orderErrors(error, lines)));
    }
  }, { class: "primary", id: "place-order" });
  replace(
    root,
    h("h1", { tabindex: "-1" }, "Your cart"),
    summary,
    table(["Product", "Price", "Quantity", "Total", ""], rows, "Cart"),
    h("p", { class: "total" }, "Total: ", h("strong", {}, money(cart.total()))),
    h("div", { class: "actions" }, h("a", { class: "button secondary", href: "#/shop" }, "Keep shopping"), place),
  );
}
