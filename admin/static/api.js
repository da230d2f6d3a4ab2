// The console's GraphQL client and its sign-in state. It uses the public API only: `login`
// with COOKIE delivery, `refresh` from the HttpOnly cookie, and the admin fields.
// The access token lives in this module's memory, never in storage or a URL.

const ENDPOINT = "/graphql";
// Refresh this long before the access token expires (or at 4/5 of a shorter lifetime).
const REFRESH_LEAD_MS = 60_000;
const RETRY_REFRESH_MS = 10_000;

export class ApiError extends Error {
  constructor(code, message, extensions = {}) {
    super(message);
    this.code = code;
    this.extensions = extensions;
  }
}

async function post(query, variables, token) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers,
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("NETWORK", "Keyturn cannot be reached. Check the connection and retry.");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError("HTTP", `Keyturn answered HTTP ${response.status}. Retry in a moment.`);
  }
  const error = body.errors?.[0];
  if (error) throw new ApiError(error.extensions?.code ?? "ERROR", error.message, error.extensions);
  return body.data;
}

const AUTH_FIELDS = "accessToken accessTokenExpiresAt user { id email role } session { id }";
const LOGIN = `mutation SignIn($email: String!, $password: String!) {
  login(input: {email: $email, password: $password, refreshTokenDelivery: COOKIE}) {
    ${AUTH_FIELDS}
  }
}`;
const REFRESH = `mutation Refresh { refresh { ${AUTH_FIELDS} } }`;
const LOGOUT = "mutation SignOut { logout }";

/**
 * The access token's lifetime from its own claims (exp - iat): unlike its expiry time, it does
 * not depend on this computer's clock agreeing with the server's.
 */
function tokenLifetimeMs(token) {
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/")));
    const lifetime = (claims.exp - claims.iat) * 1000;
    return Number.isFinite(lifetime) && lifetime > 0 ? lifetime : null;
  } catch {
    return null;
  }
}

export const NOT_ADMIN = "This account is not an admin. The console is for admins only.";

/**
 * The signed-in admin. Dispatches "ended" (detail: a message for the sign-in page) when the
 * session can no longer be used: revoked, failed refresh, or no longer an admin.
 */
export class Auth extends EventTarget {
  #token = null;
  #timer = null;
  #refreshing = null;
  user = null;
  sessionId = null;
  expiresAt = null;

  get signedIn() {
    return this.#token !== null;
  }

  /** For GraphiQL's headers editor; the console itself never shows it. */
  get authorizationHeaders() {
    return JSON.stringify({ Authorization: `Bearer ${this.#token}` });
  }

  async signIn(email, password) {
    const data = await post(LOGIN, { email, password });
    await this.#accept(data.login);
  }

  /** After a reload: resume from the refresh cookie. False when there is nothing to resume. */
  async restore() {
    try {
      await this.refresh();
      return true;
    } catch (error) {
      if (error.code === "INVALID_REFRESH_TOKEN" || error.code === "REFRESH_TOKEN_REUSED") {
        return false;
      }
      throw error;
    }
  }

  /** One refresh at a time: concurrent callers share it. */
  refresh() {
    this.#refreshing ??= post(REFRESH, {})
      .then((data) => this.#accept(data.refresh))
      .finally(() => {
        this.#refreshing = null;
      });
    return this.#refreshing;
  }

  /** Runs a query as the admin; on TOKEN_EXPIRED, refreshes once and retries. */
  async query(query, variables = {}) {
    if (!this.signedIn) throw this.#end("Sign in to continue.");
    try {
      return await post(query, variables, this.#token);
    } catch (error) {
      if (error.code !== "TOKEN_EXPIRED") throw this.#check(error);
    }
    try {
      await this.refresh();
    } catch (error) {
      throw this.#refreshFailed(error);
    }
    try {
      return await post(query, variables, this.#token);
    } catch (error) {
      throw this.#check(error);
    }
  }

  async signOut(message = "You signed out.") {
    const token = this.#token;
    this.#clear();
    try {
      await post(LOGOUT, {}, token);
    } finally {
      this.dispatchEvent(new CustomEvent("ended", { detail: message }));
    }
  }

  /** Ends the console's sign-in without calling the server (its session is already gone). */
  end(message) {
    this.#end(message);
  }

  async #accept(payload) {
    if (payload.user.role !== "ADMIN") {
      // Signed in, but not allowed here: end that session rather than leave it behind.
      await post(LOGOUT, {}, payload.accessToken).catch(() => {});
      this.#clear();
      throw new ApiError("NOT_ADMIN", NOT_ADMIN);
    }
    this.#token = payload.accessToken;
    this.user = payload.user;
    this.sessionId = payload.session.id;
    const lifetime =
      tokenLifetimeMs(payload.accessToken) ??
      new Date(payload.accessTokenExpiresAt).getTime() - Date.now();
    this.expiresAt = new Date(Date.now() + lifetime);
    this.#schedule(lifetime);
  }

  #schedule(lifetimeMs) {
    clearTimeout(this.#timer);
    const lead = Math.min(REFRESH_LEAD_MS, lifetimeMs / 5);
    this.#timer = setTimeout(() => this.#refreshAhead(), Math.max(lifetimeMs - lead, 1000));
  }

  async #refreshAhead() {
    try {
      await this.refresh();
    } catch (error) {
      if (error.code === "NETWORK" || error.code === "HTTP") {
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => this.#refreshAhead(), RETRY_REFRESH_MS);
      } else {
        this.#refreshFailed(error);
      }
    }
  }

  #refreshFailed(error) {
    if (error.code === "NETWORK" || error.code === "HTTP") return error;
    return this.#end(
      error.code === "NOT_ADMIN" ? NOT_ADMIN : "Your session has ended. Sign in again.",
    );
  }

  #check(error) {
    switch (error.code) {
      case "TOKEN_REVOKED":
        return this.#end("Your session was revoked. Sign in again.");
      case "TOKEN_EXPIRED":
      case "UNAUTHENTICATED":
        return this.#end("Your session has ended. Sign in again.");
      case "FORBIDDEN":
        return this.#end(NOT_ADMIN);
      default:
        return error;
    }
  }

  #end(message) {
    this.#clear();
    this.dispatchEvent(new CustomEvent("ended", { detail: message }));
    return new ApiError("SIGNED_OUT", message);
  }

  #clear() {
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#token = null;
    this.user = null;
    this.sessionId = null;
    this.expiresAt = null;
  }
}
