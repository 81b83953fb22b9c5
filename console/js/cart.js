// The customer's cart, kept in this browser per user, with the checkout's idempotency key.
//
// The key is made once per checkout and kept until the order is placed, so a double click, a
// retry after a network error or a reload sends the same key: the orders service then answers
// with the same order instead of placing a second one. Changing the cart starts a new checkout.

import { newKey, session } from "./api.js";

function storageKey() {
  const user = session.user();
  return `console.cart.${user ? user.id : "anonymous"}`;
}

function load() {
  try {
    const cart = JSON.parse(localStorage.getItem(storageKey()) || "null");
    if (cart && Array.isArray(cart.lines)) return cart;
  } catch {
    // a damaged cart is replaced by an empty one
  }
  return { lines: [], checkoutKey: null };
}

function save(cart) {
  localStorage.setItem(storageKey(), JSON.stringify(cart));
  window.dispatchEvent(new CustomEvent("cart-changed"));
}

export const cart = {
  lines() {
    return load().lines;
  },
  count() {
    return load().lines.reduce((sum, line) => sum + line.quantity, 0);
  },
  total() {
    return load().lines.reduce((sum, line) => sum + Number(line.price) * line.quantity, 0);
  },
  add(product, quantity = 1) {
    const current = load();
    const line = current.lines.find((l) => l.product_id === product.id);
    if (line) line.quantity += quantity;
    else
      current.lines.push({
        product_id: product.id,
        sku: product.sku,
        name: product.name,
        price: product.price,
        quantity,
      });
    save({ lines: current.lines, checkoutKey: null });
  },
  setQuantity(productId, quantity) {
    const current = load();
    const lines = current.lines
      .map((l) => (l.product_id === productId ? { ...l, quantity } : l))
      .filter((l) => l.quantity > 0);
    save({ lines, checkoutKey: null });
  },
  remove(productId) {
    this.setQuantity(productId, 0);
  },
  // The key of the checkout in progress, made on first use.
  checkoutKey() {
    const current = load();
    if (!current.checkoutKey) {
      current.checkoutKey = newKey();
      save(current);
    }
    return current.checkoutKey;
  },
  clear() {
    save({ lines: [], checkoutKey: null });
  },
};
