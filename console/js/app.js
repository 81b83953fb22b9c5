// The console's shell: routes (#/...), the navigation, sign-out, and never a blank page.

import { session } from "./api.js";
import { cart } from "./cart.js";
import { errorBox, h, notice, replace } from "./dom.js";
import { loginView, registerView } from "./views/auth.js";
import { deadLettersView } from "./views/dead-letters.js";
import { notificationsView, unreadCount } from "./views/notifications.js";
import { myOrdersView, orderView } from "./views/orders.js";
import { staffReturnsView, staffReturnView } from "./views/returns.js";
import { cartView, catalogueView } from "./views/shop.js";
import { staffOrdersView } from "./views/staff-orders.js";
import { newProductView, staffProductsView, staffProductView } from "./views/staff-products.js";
import { warehousesView } from "./views/warehouses.js";

const ROUTES = [
  { path: /^\/login$/, view: loginView, title: "Sign in", public: true },
  { path: /^\/register$/, view: registerView, title: "Create an account", public: true },
  { path: /^\/shop$/, view: catalogueView, title: "Catalogue" },
  { path: /^\/cart$/, view: cartView, title: "Cart" },
  { path: /^\/orders$/, view: myOrdersView, title: "Your orders" },
  { path: /^\/orders\/([0-9a-fA-F-]{36})$/, view: orderView, title: "Order" },
  { path: /^\/notifications$/, view: notificationsView, title: "Notifications" },
  { path: /^\/staff\/products$/, view: staffProductsView, title: "Products", staff: true },
  { path: /^\/staff\/products\/new$/, view: newProductView, title: "New product", staff: true },
  { path: /^\/staff\/products\/(\d+)$/, view: staffProductView, title: "Product", staff: true },
  { path: /^\/staff\/warehouses$/, view: warehousesView, title: "Warehouses", staff: true },
  { path: /^\/staff\/orders$/, view: staffOrdersView, title: "All orders", staff: true },
  { path: /^\/staff\/returns$/, view: staffReturnsView, title: "Returns", staff: true },
  { path: /^\/staff\/returns\/([0-9A-Za-z-]+)$/, view: staffReturnView, title: "Return", staff: true },
  { path: /^\/staff\/dead-letters$/, view: deadLettersView, title: "Dead letters", staff: true },
];

const NAV = [
  { href: "#/shop", label: "Shop" },
  { href: "#/cart", label: "Cart", badge: () => cart.count() || null, id: "cart-count" },
  { href: "#/orders", label: "Orders" },
  { href: "#/notifications", label: "Notifications", id: "unread-count" },
  { href: "#/staff/products", label: "Products", staff: true },
  { href: "#/staff/warehouses", label: "Warehouses", staff: true },
  { href: "#/staff/orders", label: "All orders", staff: true },
  { href: "#/staff/returns", label: "Returns", staff: true },
  { href: "#/staff/dead-letters", label: "Dead letters", staff: true },
];

const main = document.getElementById("view");
const nav = document.getElementById("nav");
const messages = document.getElementById("messages");
let leave = null;
let pendingFlash = null;
let renders = 0;
let shownPath = null; // messages stay while the same page is drawn again

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path, query: Object.fromEntries(new URLSearchParams(search)) };
}

export function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function flash(message, kind = "info") {
  pendingFlash = { message, kind };
}

function showMessage(node) {
  replace(messages, node);
}

async function refreshUnread() {
  const badge = document.getElementById("unread-count");
  if (!badge || !session.get()) return;
  try {
    const count = await unreadCount();
    badge.textContent = count ? String(count) : "";
    badge.hidden = !count;
    badge.setAttribute("aria-label", `${count} unread`);
  } catch {
    badge.hidden = true; // the badge is a hint; the notifications page says what went wrong
  }
}

function renderNav(path) {
  const user = session.user();
  if (!user) {
    replace(nav, h("ul", {}, h("li", {}, h("a", { href: "#/login", "aria-current": path === "/login" ? "page" : null }, "Sign in")), h("li", {}, h("a", { href: "#/register", "aria-current": path === "/register" ? "page" : null }, "Register"))));
    return;
  }
  const links = NAV.filter((item) => !item.staff || user.is_staff).map((item) => {
    const current = `#${path}` === item.href || (`#${path}`.startsWith(`${item.href}/`) && item.href !== "#/shop");
    const badge = item.id ? h("span", { class: "badge count", id: item.id, hidden: !(item.badge && item.badge()) }, item.badge ? item.badge() : "") : null;
    return h("li", { class: item.staff ? "staff" : "" }, h("a", { href: item.href, "aria-current": current ? "page" : null }, item.label, badge ? " " : null, badge));
  });
  const signOut = h("button", { type: "button", class: "link", onclick: () => { session.end(); flash("You are signed out."); navigate("#/login"); } }, "Sign out");
  replace(
    nav,
    h("ul", {}, links, h("li", { class: "who" }, h("span", { class: "muted" }, user.username, user.is_staff ? " (staff)" : ""), " ", signOut)),
  );
  refreshUnread();
}

async function render() {
  if (leave) {
    leave();
    leave = null;
  }
  const token = ++renders;
  const { path, query } = parseHash();
  const user = session.user();
  if (path === "/") {
    navigate(user ? (user.is_staff ? "#/staff/products" : "#/shop") : "#/login");
    return;
  }
  renderNav(path);
  if (pendingFlash || path !== shownPath) {
    showMessage(pendingFlash ? notice(pendingFlash.message, pendingFlash.kind) : null);
  }
  pendingFlash = null;
  shownPath = path;
  const route = ROUTES.find((r) => r.path.test(path));
  if (!route) {
    document.title = "Not found · Shop console";
    replace(main, h("h1", { tabindex: "-1" }, "Page not found"), h("p", {}, h("a", { href: "#/" }, "Go to the start page")));
    return;
  }
  if (!route.public && !user) {
    sessionStorage.setItem("console.next", location.hash);
    navigate("#/login");
    return;
  }
  if (route.staff && !user.is_staff) {
    replace(main, h("h1", { tabindex: "-1" }, route.title), notice("This page is for staff only.", "warning"));
    return;
  }
  document.title = `${route.title} · Shop console`;
  replace(main, h("p", { class: "loading", role: "status" }, "Loading…"));
  const context = {
    params: path.match(route.path).slice(1),
    query,
    navigate,
    flash,
    reload: () => render(),
    refreshNav: () => renderNav(path),
    onLeave: (callback) => {
      if (token === renders) leave = callback;
      else callback();
    },
  };
  try {
    const root = h("div", { class: "view" });
    await route.view(root, context);
    if (token !== renders) return;
    replace(main, root);
    if (!root.querySelector("[autofocus]")) root.querySelector("h1")?.focus({ preventScroll: true });
    else root.querySelector("[autofocus]").focus();
  } catch (error) {
    if (token !== renders || error.code === "session_expired") return;
    replace(main, h("h1", { tabindex: "-1" }, route.title), errorBox(error.message || String(error), () => render()));
  }
}

window.addEventListener("hashchange", render);
window.addEventListener("cart-changed", () => {
  const badge = document.getElementById("cart-count");
  if (!badge) return;
  const count = cart.count();
  badge.textContent = count ? String(count) : "";
  badge.hidden = !count;
});
window.addEventListener("session-expired", () => {
  flash("Your session has expired. Please sign in again.", "warning");
  sessionStorage.setItem("console.next", location.hash);
  navigate("#/login");
});
window.addEventListener("console-error", (event) => showMessage(errorBox(event.detail)));
window.addEventListener("error", (event) => showMessage(errorBox(`Something went wrong: ${event.message}`)));
window.addEventListener("unhandledrejection", (event) => {
  const reason = event.reason;
  if (reason && reason.code === "session_expired") return;
  showMessage(errorBox((reason && reason.message) || "Something went wrong."));
});
setInterval(refreshUnread, 15000);

render();
