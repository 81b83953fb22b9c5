// Signing in (a token from the user-notification service) and registering a customer account.

import { api, signIn } from "../api.js";
import { field, h, replace, showFormErrors } from "../dom.js";

function homeOf(user) {
  return user.is_staff ? "#/staff/products" : "#/shop";
}

export async function loginView(root, ctx) {
  const username = h("input", { name: "username", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const summary = h("div");
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card narrow", novalidate: false },
    summary,
    field("Username", username),
    field("Password", password),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const current = await signIn(username.value.trim(), password.value);
      const next = sessionStorage.getItem("console.next");
      sessionStorage.removeItem("console.next");
      ctx.navigate(next && next !== "#/login" ? next : homeOf(current.user));
    } catch (error) {
      showFormErrors(form, error, summary);
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  replace(
    root,
    h("h1", { tabindex: "-1" }, "Sign in"),
    form,
    h("p", { class: "center" }, "New here? ", h("a", { href: "#/register" }, "Create an account")),
  );
  username.focus();
}

export async function registerView(root, ctx) {
  const username = h("input", { name: "username", autocomplete: "username", required: true, maxlength: "150", autofocus: true });
  const email = h("input", { name: "email", type: "email", autocomplete: "email", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: "8" });
  const summary = h("div");
  const submit = h("button", { type: "submit" }, "Create account");
  const form = h(
    "form",
    { class: "card narrow" },
    summary,
    field("Username", username, "Letters, digits and @ . + - _ only."),
    field("E-mail", email),
    field("Password", password, "At least 8 characters; not too common."),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      await api("/api/users/register/", {
        method: "POST",
        auth: false,
        body: { username: username.value.trim(), email: email.value.trim(), password: password.value },
      });
      const current = await signIn(username.value.trim(), password.value);
      ctx.flash(`Welcome, ${current.user.username}! Your account is ready.`, "success");
      ctx.navigate(homeOf(current.user));
    } catch (error) {
      showFormErrors(form, error, summary);
    } finally {
      submit.disabled = false;
    }
  });
  replace(
    root,
    h("h1", { tabindex: "-1" }, "Create an account"),
    form,
    h("p", { class: "center" }, "Already registered? ", h("a", { href: "#/login" }, "Sign in")),
  );
  username.focus();
}
