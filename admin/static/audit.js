import { describeDevice } from "./devices.js";
import { h, humanize, Pager, sessionTag, table, time } from "./dom.js";

const EVENTS = `query AuditEvents($userId: ID, $kinds: [String!], $after: String) {
  auditEvents(userId: $userId, kinds: $kinds, first: 50, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges {
      node {
        id kind createdAt sessionId ipAddress userAgent detail
        user { id email }
        actor { id email }
      }
    }
  }
}`;
const USER_EMAIL = "query UserEmail($id: ID!) { user(id: $id) { id email } }";
const FIND_USERS = `query FindUsers($search: String!) {
  users(search: $search, first: 100) { edges { node { id email } } }
}`;

export const KINDS = [
  "login_succeeded",
  "login_failed",
  "registered",
  "refreshed",
  "refresh_reuse_detected",
  "logged_out",
  "logged_out_all",
  "password_changed",
  "session_revoked",
  "user_sessions_revoked",
  "user_created",
  "user_activated",
  "user_deactivated",
  "role_changed",
  "rate_limited",
];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function userLink(user) {
  if (!user) return h("span", { class: "muted" }, "—");
  return h("a", { href: `#/users/${encodeURIComponent(user.id)}` }, user.email);
}

/** The audit log, newest first, filtered by user and kind (kept in the address: #/audit?…). */
export async function auditView({ auth, fail }, { params }) {
  const userId = params.get("user") || null;
  const kind = KINDS.includes(params.get("kind")) ? params.get("kind") : "";
  const pager = new Pager();
  const results = h("div", { class: "results" });
  const error = h("p", { class: "notice error", role: "alert", id: "audit-filter-error" });

  let email = "";
  if (userId) {
    const { user } = await auth.query(USER_EMAIL, { id: userId });
    email = user?.email ?? userId;
  }
  const userInput = h("input", {
    id: "audit-user",
    name: "user",
    type: "text",
    inputmode: "email",
    autocomplete: "off",
    spellcheck: "false",
    value: email,
    "aria-describedby": "audit-filter-error",
  });
  const kindSelect = h(
    "select",
    { id: "audit-kind", name: "kind" },
    h("option", { value: "" }, "All kinds"),
    KINDS.map((k) => h("option", { value: k, selected: k === kind }, humanize(k))),
  );

  async function load() {
    const { auditEvents } = await auth.query(EVENTS, {
      userId,
      kinds: kind ? [kind] : null,
      after: pager.after,
    });
    results.replaceChildren(
      table({
        columns: ["Time", "Event", "User", "By", "Session", "Address", "Device", "Detail"],
        rows: auditEvents.edges.map(({ node }) => ({
          cells: [
            time(node.createdAt),
            h("span", { class: `kind kind-${node.kind}`, title: node.kind }, humanize(node.kind)),
            userLink(node.user),
            node.actor ? userLink(node.actor) : h("span", { class: "muted" }, "—"),
            sessionTag(node.sessionId),
            node.ipAddress ?? h("span", { class: "muted" }, "—"),
            node.userAgent
              ? h("span", { title: node.userAgent }, describeDevice(node.userAgent))
              : h("span", { class: "muted" }, "—"),
            node.detail ? h("code", { class: "detail" }, node.detail) : "",
          ],
        })),
        empty: "No events match these filters.",
      }),
      pager.controls(auditEvents.pageInfo, () => load().catch(fail), "Pages of events"),
    );
  }

  async function applyFilters(event) {
    event.preventDefault();
    error.textContent = "";
    const wanted = userInput.value.trim();
    let id = "";
    if (wanted && UUID.test(wanted)) {
      id = wanted;
    } else if (wanted) {
      const { users } = await auth.query(FIND_USERS, { search: wanted });
      const match = users.edges.find(({ node }) => node.email === wanted.toLowerCase());
      if (!match) {
        error.textContent = `No user has the email “${wanted}”.`;
        userInput.focus();
        return;
      }
      id = match.node.id;
    }
    const query = new URLSearchParams();
    if (id) query.set("user", id);
    if (kindSelect.value) query.set("kind", kindSelect.value);
    const search = query.toString();
    const hash = `#/audit${search ? `?${search}` : ""}`;
    if (location.hash === hash) {
      pager.reset();
      await load();
    } else {
      location.hash = hash;
    }
  }

  await load();
  return h(
    "section",
    {},
    h("h1", { tabindex: -1 }, "Audit log"),
    h(
      "form",
      { class: "toolbar filters", onsubmit: (event) => applyFilters(event).catch(fail) },
      h("label", { for: "audit-user" }, "User email"),
      userInput,
      h("label", { for: "audit-kind" }, "Kind"),
      kindSelect,
      h("button", { type: "submit" }, "Filter"),
      (userId || kind) && h("a", { href: "#/audit", class: "button-link" }, "Clear filters"),
    ),
    error,
    h("p", { class: "muted" }, "Newest first."),
    results,
  );
}
