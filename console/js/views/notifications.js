// The customer's notifications, newest first, with the unread count and marking as read.

import { api, query } from "../api.js";
import { actionButton, h, notice, pager, replace, when } from "../dom.js";

export async function unreadCount() {
  const { data } = await api("/api/notifications/?page_size=1");
  return data.unread_count;
}

export async function notificationsView(root, ctx) {
  const cursor = ctx.query.cursor || "";
  const onlyUnread = ctx.query.unread === "true";
  const { data } = await api(`/api/notifications/${query({ cursor, unread: onlyUnread ? "true" : "" })}`);
  const reload = () => ctx.reload();
  const items = data.results.map((note) =>
    h(
      "li",
      { class: `card notification ${note.read_at ? "read" : "unread"}`, dataset: { id: note.id } },
      h("h2", {}, note.read_at ? null : h("span", { class: "badge unread-dot" }, "New"), " ", note.title),
      note.body ? h("p", {}, note.body) : null,
      h(
        "p",
        { class: "muted" },
        h("time", { datetime: note.created_at }, when(note.created_at)),
        note.order_id ? [" · ", h("a", { href: `#/orders/${note.order_id}` }, "View the order")] : null,
      ),
      note.read_at
        ? null
        : actionButton("Mark as read", async () => {
            await api(`/api/notifications/${note.id}/read/`, { method: "POST" });
            reload();
          }, { class: "secondary" }),
    ),
  );
  const toggle = h("a", { href: onlyUnread ? "#/notifications" : "#/notifications?unread=true" }, onlyUnread ? "Show all" : "Show unread only");
  replace(
    root,
    h("div", { class: "heading-row" },
      h("h1", { tabindex: "-1" }, "Notifications"),
      data.unread_count
        ? actionButton("Mark all as read", async () => {
            await api("/api/notifications/read-all/", { method: "POST" });
            reload();
          }, { class: "secondary" })
        : null),
    h("p", { class: "unread-summary", role: "status" }, data.unread_count === 1 ? "1 unread notification" : `${data.unread_count} unread notifications`, " · ", toggle),
    items.length ? h("ul", { class: "notifications" }, items) : notice("Nothing here yet. You will be told here when your orders change."),
    pager(data, (to) => ctx.navigate(`#/notifications${query({ cursor: to, unread: onlyUnread ? "true" : "" })}`)),
  );
}
