// The admin console: a client of Keyturn's GraphQL API, routed by the address's #fragment.
import { Auth } from "./api.js";
import { auditView } from "./audit.js";
import { confirmAction } from "./dialog.js";
import { h } from "./dom.js";
import { signInView } from "./signin.js";
import { userView } from "./user.js";
import { usersView } from "./users.js";

const auth = new Auth();
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const account = document.getElementById("account");
const statusLine = document.getElementById("status");
const alertLine = document.getElementById("alert");

const VIEWS = {
  users: { title: "Users", render: usersView },
  user: { title: "User", render: userView },
  audit: { title: "Audit log", render: auditView },
};

function notify(message) {
  alertLine.textContent = "";
  statusLine.textContent = message;
}

function fail(error) {
  // The sign-in page already says why a session ended.
  if (error.code === "SIGNED_OUT") return;
  statusLine.textContent = "";
  alertLine.textContent = error.message || "Something went wrong.";
}

function clearNotices() {
  statusLine.textContent = "";
  alertLine.textContent = "";
}

const context = { auth, notify, fail, confirm: confirmAction };

function route() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, id] = path.split("/");
  const params = new URLSearchParams(query);
  if (name === "users" && id) return { view: "user", id: decodeURIComponent(id), params };
  if (name === "audit") return { view: "audit", params };
  return { view: "users", params };
}

let renderCount = 0;

function show(view, title) {
  main.replaceChildren(view);
  main.removeAttribute("aria-busy");
  document.title = `${title} · Keyturn admin`;
  // A new page starts at its top, and its heading takes the focus so that keyboard and screen
  // reader users follow along.
  window.scrollTo(0, 0);
  main.querySelector("h1")?.focus({ preventScroll: true });
}

function showSignIn(message) {
  renderCount += 1;
  nav.hidden = true;
  account.hidden = true;
  clearNotices();
  show(signInView({ auth, message, onSignedIn: () => render({ keepNotices: false }) }), "Sign in");
}

async function render({ keepNotices = false } = {}) {
  if (!auth.signedIn) {
    showSignIn();
    return;
  }
  const ticket = ++renderCount;
  const current = route();
  nav.hidden = false;
  account.hidden = false;
  document.getElementById("account-email").textContent = auth.user.email;
  for (const link of nav.querySelectorAll("a[data-view]")) {
    const active = link.dataset.view === (current.view === "user" ? "users" : current.view);
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!keepNotices) clearNotices();
  main.setAttribute("aria-busy", "true");
  const { title, render: build } = VIEWS[current.view];
  let view;
  try {
    view = await build(context, current);
  } catch (error) {
    if (error.code === "SIGNED_OUT") return;
    view = h(
      "section",
      {},
      h("h1", { tabindex: -1 }, "Cannot load this page"),
      h("p", { role: "alert", class: "notice error" }, error.message),
      h("button", { type: "button", onclick: () => render() }, "Try again"),
    );
  }
  // A later navigation won the race: its page is the one to show.
  if (ticket === renderCount) show(view, title);
}

auth.addEventListener("ended", (event) => showSignIn(event.detail));
window.addEventListener("hashchange", () => render());

document.getElementById("sign-out").addEventListener("click", () => {
  auth.signOut().catch(() => {});
});

document.getElementById("copy-token").addEventListener("click", async () => {
  if (!auth.signedIn) return;
  try {
    await navigator.clipboard.writeText(auth.authorizationHeaders);
  } catch {
    fail(new Error("The browser did not allow copying to the clipboard."));
    return;
  }
  const until = auth.expiresAt.toLocaleTimeString(undefined, { timeStyle: "short" });
  notify(
    `Copied an Authorization header, valid until ${until}.` +
      (graphiqlOn ? " In GraphiQL, open Headers and paste it." : ""),
  );
});

// Without GraphiQL (production, unless KEYTURN_GRAPHIQL turns it on) the token is still the
// header an API client such as curl sends, but the console names no page that is not there.
const graphiqlOn = document.documentElement.dataset.graphiql === "on";
if (!graphiqlOn) {
  document.getElementById("graphiql-link").remove();
  document.getElementById("copy-token").textContent = "Copy access token";
}

async function start() {
  try {
    if (await auth.restore()) {
      await render();
      return;
    }
    showSignIn();
  } catch (error) {
    showSignIn(error.message);
  }
}

start();
