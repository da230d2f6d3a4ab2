// Building the page. Everything goes in as DOM nodes and text nodes: nothing a user controls
// (emails, user agents, audit details) is ever parsed as HTML.

/**
 * Creates an element. `props` are attributes, except `on<event>` (a listener), `class`,
 * and the properties `value`, `checked`, `disabled` and `selected`. Children are nodes or
 * strings (added as text); null, undefined and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key.startsWith("on")) {
      element.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      element.className = value;
    } else if (["value", "checked", "disabled", "selected"].includes(key)) {
      element[key] = value;
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  element.append(...children.flat(Infinity).filter((c) => c != null && c !== false));
  return element;
}

const withYear = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const thisYear = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "numeric",
  minute: "2-digit",
});

/** A <time> element for an ISO 8601 timestamp (the year only when it is not this one). */
export function time(iso, none = "never") {
  if (!iso) return h("span", { class: "muted", "aria-label": none }, "—");
  const date = new Date(iso);
  const format = date.getFullYear() === new Date().getFullYear() ? thisYear : withYear;
  return h("time", { datetime: iso, title: date.toISOString() }, format.format(date));
}

/**
 * A session's id, shortened to its first 8 digits (the whole id in its title): what ties an
 * audit event to the session it is about on the user's page.
 */
export function sessionTag(id) {
  if (!id) return h("span", { class: "muted" }, "—");
  return h("code", { class: "session-id", title: id }, id.slice(0, 8));
}

/** A table whose cells carry their column name, so narrow screens can show rows as cards. */
export function table({ caption, columns, rows, empty }) {
  if (rows.length === 0) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption && h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map((name) => h("th", { scope: "col" }, name)))),
      h(
        "tbody",
        {},
        rows.map(({ cells, class: className }) =>
          h(
            "tr",
            { class: className },
            cells.map((cell, i) => h("td", { "data-label": columns[i] }, cell)),
          ),
        ),
      ),
    ),
  );
}

/** Previous / Next buttons over keyset pages: the cursors of the pages seen are kept here. */
export class Pager {
  #cursors = [null];
  #index = 0;

  get after() {
    return this.#cursors[this.#index];
  }

  get page() {
    return this.#index + 1;
  }

  reset() {
    this.#cursors = [null];
    this.#index = 0;
  }

  controls(pageInfo, onChange, label) {
    const previous = h(
      "button",
      {
        type: "button",
        disabled: this.#index === 0,
        onclick: () => {
          this.#index -= 1;
          onChange();
        },
      },
      "Previous page",
    );
    const next = h(
      "button",
      {
        type: "button",
        disabled: !pageInfo.hasNextPage,
        onclick: () => {
          this.#cursors[this.#index + 1] = pageInfo.endCursor;
          this.#index += 1;
          onChange();
        },
      },
      "Next page",
    );
    return h(
      "nav",
      { class: "pager", "aria-label": label },
      previous,
      h("span", { class: "muted" }, `Page ${this.page}`),
      next,
    );
  }
}

const KIND_LABELS = new Map();
/** "session_revoked" → "Session revoked". */
export function humanize(code) {
  if (!KIND_LABELS.has(code)) {
    const words = code.replaceAll("_", " ").toLowerCase();
    KIND_LABELS.set(code, words.charAt(0).toUpperCase() + words.slice(1));
  }
  return KIND_LABELS.get(code);
}
