import { h, Pager, table, time } from "./dom.js";

// The total is counted with the first page of each search only: a count reads every matching
// user, where a page reads twenty, so later pages keep the first page's figure.
const USERS = `query Users($search: String, $after: String, $count: Boolean!) {
  users(search: $search, first: 20, after: $after) {
    totalCount @include(if: $count)
    pageInfo { hasNextPage endCursor }
    edges { node { id email role isActive activeSessionCount lastLoginAt } }
  }
}`;

const SEARCH_DELAY_MS = 250;

export function roleLabel(role) {
  return role === "ADMIN" ? "Admin" : "User";
}

export function statusBadge(isActive) {
  return isActive
    ? h("span", { class: "badge ok" }, "Active")
    : h("span", { class: "badge off" }, "Deactivated");
}

/** Users: search by email, page through, open one. */
export async function usersView({ auth, fail }) {
  const pager = new Pager();
  const results = h("div", { class: "results" });
  const input = h("input", {
    id: "user-search",
    name: "search",
    type: "search",
    autocomplete: "off",
    spellcheck: "false",
  });
  let search = "";
  let timer = null;
  let total = 0;

  async function load() {
    const firstPage = !pager.after;
    const { users } = await auth.query(USERS, {
      search: search || null,
      after: pager.after,
      count: firstPage,
    });
    if (firstPage) total = users.totalCount;
    const count = total === 1 ? "1 user" : `${total} users`;
    results.replaceChildren(
      h("p", { class: "muted", role: "status" }, search ? `${count} matching “${search}”` : count),
      table({
        columns: ["Email", "Role", "Status", "Active sessions", "Last sign-in"],
        rows: users.edges.map(({ node }) => ({
          cells: [
            h("a", { href: `#/users/${encodeURIComponent(node.id)}` }, node.email),
            roleLabel(node.role),
            statusBadge(node.isActive),
            String(node.activeSessionCount),
            time(node.lastLoginAt),
          ],
        })),
        empty: search ? `No user's email contains “${search}”.` : "No users yet.",
      }),
      pager.controls(users.pageInfo, () => load().catch(fail), "Pages of users"),
    );
  }

  function searchNow() {
    clearTimeout(timer);
    if (input.value.trim() === search) return;
    search = input.value.trim();
    pager.reset();
    load().catch(fail);
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(searchNow, SEARCH_DELAY_MS);
  });

  await load();
  return h(
    "section",
    {},
    h("h1", { tabindex: -1 }, "Users"),
    h(
      "form",
      {
        role: "search",
        class: "toolbar",
        onsubmit: (event) => {
          event.preventDefault();
          searchNow();
        },
      },
      h("label", { for: "user-search" }, "Search by email"),
      input,
      h("button", { type: "submit" }, "Search"),
    ),
    results,
  );
}
