// Calls to the public REST APIs on this origin, the session's tokens, and errors in plain words.

const SESSION_KEY = "console.session";
const REFRESH_MARGIN_SECONDS = 20;

const SERVICE_BY_PREFIX = {
  products: "inventory",
  categories: "inventory",
  warehouses: "inventory",
  "stock-transfers": "inventory",
  backorders: "inventory",
  orders: "orders",
  returns: "orders",
  users: "accounts",
  notifications: "notifications",
};

export class ApiError extends Error {
  constructor(message, { status = 0, code = "error", errors = null, data = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.errors = errors;
    this.data = data;
  }
}

function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(part), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join(""),
    );
    return JSON.parse(json);
  } catch {
    return {};
  }
}

export const session = {
  get() {
    try {
      const stored = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
      return stored && stored.access ? stored : null;
    } catch {
      return null;
    }
  },
  start({ access, refresh }) {
    const claims = claimsOf(access);
    const value = {
      access,
      refresh,
      user: { id: claims.user_id, username: claims.username, is_staff: Boolean(claims.is_staff) },
      expires: claims.exp || 0,
    };
    localStorage.setItem(SESSION_KEY, JSON.stringify(value));
    return value;
  },
  renew(access) {
    const current = this.get();
    if (!current) return null;
    return this.start({ access, refresh: current.refresh });
  },
  end() {
    localStorage.removeItem(SESSION_KEY);
  },
  user() {
    const current = this.get();
    return current ? current.user : null;
  },
};

function serviceName(path) {
  const prefix = path.split("?")[0].split("/")[2] || "";
  if (prefix === "dead-letters") return path.split("/")[3] || "requested";
  return SERVICE_BY_PREFIX[prefix] || "requested";
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text.slice(0, 300) };
  }
}

function plainError(status, data, path) {
  const detail = data && typeof data.detail === "string" ? data.detail : "";
  const code = (data && data.code) || "error";
  const errors = data && data.errors && typeof data.errors === "object" ? data.errors : null;
  const service = serviceName(path);
  let message;
  if (status === 502 || status === 503 || status === 504) {
    message =
      detail && code !== "error"
        ? detail
        : `The ${service} service is unavailable right now. Try again in a moment.`;
  } else if (status === 401) {
    message = code === "bad_credentials" ? "Wrong username or password." : detail || "Please sign in.";
  } else if (status === 403) {
    message = "You are not allowed to do that" + (detail ? ` (${detail})` : ".");
  } else if (status === 404) {
    message = detail && detail !== "Not found." ? detail : "That was not found. It may have been removed.";
  } else if (status >= 500) {
    message = `The ${service} service had a problem (${status}). Try again in a moment.`;
  } else {
    message = detail || `The request was refused (${status}).`;
  }
  return new ApiError(message, { status, code, errors, data });
}

let refreshing = null;

// A new access token from the refresh token; false when the session cannot be renewed.
function refreshSession() {
  if (!refreshing) {
    refreshing = (async () => {
      const current = session.get();
      if (!current || !current.refresh) return false;
      try {
        const response = await fetch("/api/users/token/refresh/", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ refresh: current.refresh }),
        });
        if (!response.ok) return response.status >= 500 ? null : false;
        const data = await response.json();
        session.renew(data.access);
        return true;
      } catch {
        return null; // the service is unreachable: not a reason to sign the user out
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

function sessionExpired() {
  const signedIn = session.get() !== null; // several calls may fail at once: tell the page once
  session.end();
  if (signedIn) window.dispatchEvent(new CustomEvent("session-expired"));
  return new ApiError("Your session has expired. Please sign in again.", {
    status: 401,
    code: "session_expired",
  });
}

export async function api(path, { method = "GET", body, headers = {}, auth = true, retried = false } = {}) {
  let current = auth ? session.get() : null;
  if (current && current.expires && current.expires - Date.now() / 1000 < REFRESH_MARGIN_SECONDS) {
    if ((await refreshSession()) === false) throw sessionExpired();
    current = session.get();
  }
  const request = {
    method,
    headers: { Accept: "application/json", ...headers },
  };
  if (current) request.headers.Authorization = `Bearer ${current.access}`;
  if (body !== undefined) {
    request.headers["Content-Type"] = "application/json";
    request.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, request);
  } catch {
    throw new ApiError(
      `Cannot reach the ${serviceName(path)} service. Check the connection and try again.`,
      { code: "network" },
    );
  }
  if (response.status === 401 && current && !retried) {
    const renewed = await refreshSession();
    if (renewed) return api(path, { method, body, headers, auth, retried: true });
    if (renewed === false) throw sessionExpired();
    throw new ApiError(
      "Your session needs renewing, but the accounts service is unavailable. Try again in a moment.",
      { status: 503, code: "service_unavailable" },
    );
  }
  const data = await readBody(response);
  if (!response.ok) {
    if (response.status === 401 && current) throw sessionExpired();
    throw plainError(response.status, data, path);
  }
  return { data, status: response.status, headers: response.headers };
}

export async function signIn(username, password) {
  const { data } = await api("/api/users/token/", {
    method: "POST",
    body: { username, password },
    auth: false,
  });
  return session.start(data);
}

export function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return pairs.length ? `?${new URLSearchParams(pairs)}` : "";
}

// A v4 UUID also where crypto.randomUUID is missing (pages not served from a secure origin).
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
