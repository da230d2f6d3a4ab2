import { describeDevice } from "./devices.js";
import { h, Pager, sessionTag, table, time } from "./dom.js";
import { roleLabel, statusBadge } from "./users.js";

const USER = `query User($id: ID!) {
  user(id: $id) {
    id email role isActive tokenVersion createdAt lastLoginAt activeSessionCount
  }
}`;
const SESSIONS = `query Sessions($userId: ID!, $status: [SessionStatus!]!, $after: String) {
  userSessions(userId: $userId, status: $status, first: 50, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      node {
        id status isCurrent createdAt lastUsedAt expiresAt
        ipAddress userAgent revokedAt revokedReason
      }
    }
  }
}`;
const REVOKE_SESSION = `mutation RevokeSession($id: ID!) {
  revokeSession(sessionId: $id) { id status }
}`;
const REVOKE_USER_SESSIONS = `mutation RevokeUserSessions($id: ID!) {
  revokeUserSessions(userId: $id) { id activeSessionCount }
}`;
const SET_ACTIVE = `mutation SetUserActive($id: ID!, $active: Boolean!) {
  setUserActive(userId: $id, isActive: $active) { id isActive }
}`;
const SET_ROLE = `mutation SetUserRole($id: ID!, $role: Role!) {
  setUserRole(userId: $id, role: $role) { id role }
}`;

const STATUS_FILTERS = {
  active: { label: "Active sessions", status: ["ACTIVE"] },
  all: { label: "All sessions", status: ["ACTIVE", "EXPIRED", "REVOKED"] },
};

const REASONS = {
  logout: "signed out",
  revoked_by_user: "revoked by the user",
  admin: "revoked by an admin",
  reuse_detected: "refresh token reused",
  sessions_revoked: "signed out everywhere",
};

function sessionLabel(session) {
  const address = session.ipAddress ? ` (${session.ipAddress})` : "";
  return `${describeDevice(session.userAgent)}${address}`;
}

function statusCell(session) {
  if (session.status === "ACTIVE") return h("span", { class: "badge ok" }, "Active");
  if (session.status === "EXPIRED") return h("span", { class: "badge off" }, "Expired");
  const reason = REASONS[session.revokedReason] ?? session.revokedReason;
  return h(
    "span",
    {},
    h("span", { class: "badge danger" }, "Revoked"),
    reason && h("span", { class: "muted block" }, reason),
    session.revokedAt && h("span", { class: "muted block" }, time(session.revokedAt)),
  );
}

/** One user: profile, account actions, sessions. */
export async function userView({ auth, fail, notify, confirm }, { id }) {
  const { user: initial } = await auth.query(USER, { id });
  if (!initial) {
    return h(
      "section",
      {},
      h("h1", { tabindex: -1 }, "No such user"),
      h("p", {}, "No user has this id. ", h("a", { href: "#/users" }, "Back to all users")),
    );
  }
  let user = initial;
  let filter = "active";
  const pager = new Pager();
  const heading = h("h1", { tabindex: -1, class: "email" });
  const profile = h("dl", { class: "profile" });
  const actions = h("div", { class: "actions" });
  const sessions = h("div", { class: "results" });
  const isMe = () => auth.user?.id === user.id;

  function renderProfile() {
    heading.textContent = user.email;
    profile.replaceChildren(
      ...[
        ["Role", roleLabel(user.role)],
        ["Status", statusBadge(user.isActive)],
        ["Active sessions", String(user.activeSessionCount)],
        ["Last sign-in", time(user.lastLoginAt)],
        ["Created", time(user.createdAt)],
        ["Token version", String(user.tokenVersion)],
        ["ID", h("code", {}, user.id)],
      ].flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
    );
    const role = h(
      "select",
      { id: "role", name: "role" },
      h("option", { value: "USER", selected: user.role === "USER" }, "User"),
      h("option", { value: "ADMIN", selected: user.role === "ADMIN" }, "Admin"),
    );
    actions.replaceChildren(
      h(
        "button",
        { type: "button", class: "danger", onclick: () => signOutEverywhere().catch(fail) },
        "Sign out everywhere",
      ),
      h(
        "button",
        { type: "button", class: user.isActive ? "danger" : "", onclick: () => toggleActive().catch(fail) },
        user.isActive ? "Deactivate" : "Activate",
      ),
      h(
        "form",
        {
          class: "inline",
          onsubmit: (event) => {
            event.preventDefault();
            changeRole(role.value).catch(fail);
          },
        },
        h("label", { for: "role" }, "Role"),
        role,
        h("button", { type: "submit" }, "Change role"),
      ),
    );
  }

  async function reload() {
    ({ user } = await auth.query(USER, { id }));
    if (!user) return;
    renderProfile();
    await loadSessions();
  }

  // The result is told once the page shows it: a notice before the reload would let the reload
  // replace the controls under someone already using them (a role picked, then reset).
  async function reloadThenNotify(message, refocus = keepFocus()) {
    try {
      await reload();
    } finally {
      notify(message);
      refocus();
    }
  }

  // A reload replaces the controls, and the one that had the focus with them, which left it on
  // the page's body: a keyboard user started over from the top after every action. The focus
  // goes back to the control now in the same place among the account's actions, or, when that
  // control is gone (a revoked session's row), to the heading of its section.
  function keepFocus() {
    const focused = document.activeElement;
    const controls = () => [...actions.querySelectorAll("button, select")];
    const index = controls().indexOf(focused);
    const section = sessions.contains(focused) ? "sessions-heading" : "account-heading";
    return () => {
      const target = (index >= 0 && controls()[index]) || document.getElementById(section);
      target?.focus();
    };
  }

  async function loadSessions() {
    const { userSessions } = await auth.query(SESSIONS, {
      userId: id,
      status: STATUS_FILTERS[filter].status,
      after: pager.after,
    });
    sessions.replaceChildren(
      table({
        caption: `${STATUS_FILTERS[filter].label}: ${userSessions.totalCount}`,
        columns: ["Device", "Address", "Created", "Last used", "Expires", "Status", "Action"],
        rows: userSessions.edges.map(({ node }) => sessionRow(node)),
        empty:
          filter === "active" ? "No active sessions." : "No sessions.",
      }),
      pager.controls(userSessions.pageInfo, () => loadSessions().catch(fail), "Pages of sessions"),
    );
  }

  function sessionRow(session) {
    const deviceId = `device-${session.id}`;
    const device = h(
      "div",
      { id: deviceId },
      h("strong", {}, describeDevice(session.userAgent)),
      session.isCurrent && h("span", { class: "badge current" }, "This console"),
      session.userAgent && h("span", { class: "ua", title: session.userAgent }, session.userAgent),
      h("span", { class: "ua" }, "Session ", sessionTag(session.id)),
    );
    const revoke =
      session.status === "ACTIVE"
        ? h(
            "button",
            {
              type: "button",
              class: "danger small",
              "aria-describedby": deviceId,
              onclick: () => revokeSession(session).catch(fail),
            },
            "Revoke",
          )
        : null;
    return {
      class: session.isCurrent ? "current" : null,
      cells: [
        device,
        session.ipAddress ?? h("span", { class: "muted" }, "unknown"),
        time(session.createdAt),
        time(session.lastUsedAt),
        session.status === "ACTIVE" ? time(session.expiresAt) : time(null, "ended"),
        statusCell(session),
        revoke,
      ],
    };
  }

  async function revokeSession(session) {
    const refocus = keepFocus();
    const label = sessionLabel(session);
    const ok = await confirm({
      title: "Revoke this session?",
      message: session.isCurrent
        ? `${label} is this console's own session: you will have to sign in again.`
        : `${label} of ${user.email}: its refresh token stops working at once, and its access token within a second.`,
      action: "End session",
    });
    if (!ok) return;
    await auth.query(REVOKE_SESSION, { id: session.id });
    if (session.isCurrent) {
      auth.end("You revoked this console's session. Sign in again.");
      return;
    }
    await reloadThenNotify(`Revoked the session of ${label}.`, refocus);
  }

  async function signOutEverywhere() {
    const refocus = keepFocus();
    const count = user.activeSessionCount;
    const ok = await confirm({
      title: `Sign ${user.email} out everywhere?`,
      message:
        `This ends all ${count} active session${count === 1 ? "" : "s"} of ${user.email}` +
        (isMe() ? ", including this console." : ". They can sign in again."),
      action: "End all sessions",
    });
    if (!ok) return;
    await auth.query(REVOKE_USER_SESSIONS, { id: user.id });
    if (isMe()) {
      auth.end("You signed yourself out everywhere. Sign in again.");
      return;
    }
    await reloadThenNotify(
      `Signed ${user.email} out everywhere: ${count} session${count === 1 ? "" : "s"} ended.`,
      refocus,
    );
  }

  async function toggleActive() {
    const refocus = keepFocus();
    const activate = !user.isActive;
    if (!activate) {
      const ok = await confirm({
        title: `Deactivate ${user.email}?`,
        message:
          "Their sessions end now and they cannot sign in until the account is activated again.",
        action: "Deactivate account",
      });
      if (!ok) return;
    }
    await auth.query(SET_ACTIVE, { id: user.id, active: activate });
    if (!activate && isMe()) {
      auth.end("You deactivated your own account.");
      return;
    }
    await reloadThenNotify(
      activate ? `Activated ${user.email}.` : `Deactivated ${user.email}: signed out everywhere.`,
      refocus,
    );
  }

  async function changeRole(role) {
    const refocus = keepFocus();
    if (role === user.role) {
      notify(`${user.email} is already ${role === "ADMIN" ? "an admin" : "a user"}.`);
      return;
    }
    const promote = role === "ADMIN";
    const ok = await confirm({
      title: promote ? `Make ${user.email} an admin?` : `Make ${user.email} a regular user?`,
      message: promote
        ? "Admins see every user's sessions and can end them, and change any account."
        : "They lose access to the admin fields and this console at their next request.",
      action: promote ? "Make admin" : "Make user",
    });
    if (!ok) {
      renderProfile();
      refocus();
      return;
    }
    await auth.query(SET_ROLE, { id: user.id, role });
    if (!promote && isMe()) {
      auth.end("You are no longer an admin.");
      return;
    }
    await reloadThenNotify(
      promote ? `${user.email} is now an admin.` : `${user.email} is now a regular user.`,
      refocus,
    );
  }

  const show = h(
    "select",
    {
      id: "session-filter",
      onchange: (event) => {
        filter = event.target.value;
        pager.reset();
        loadSessions().catch(fail);
      },
    },
    Object.entries(STATUS_FILTERS).map(([value, { label }]) => h("option", { value }, label)),
  );

  renderProfile();
  await loadSessions();
  return h(
    "section",
    {},
    h("p", { class: "crumbs" }, h("a", { href: "#/users" }, "← All users")),
    heading,
    profile,
    h(
      "section",
      { "aria-labelledby": "account-heading" },
      h("h2", { id: "account-heading", tabindex: "-1" }, "Account"),
      actions,
    ),
    h(
      "section",
      { "aria-labelledby": "sessions-heading" },
      h(
        "div",
        { class: "section-head" },
        h("h2", { id: "sessions-heading", tabindex: "-1" }, "Sessions"),
        h("div", { class: "inline" }, h("label", { for: "session-filter" }, "Show"), show),
      ),
      sessions,
    ),
    h(
      "p",
      {},
      h("a", { href: `#/audit?user=${encodeURIComponent(user.id)}` }, "Audit log of this user"),
    ),
  );
}
