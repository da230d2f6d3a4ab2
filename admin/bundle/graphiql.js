// GraphiQL as Keyturn serves it: bundled at install time (`npm run build`) into
// ../vendor/graphiql, so the page loads nothing from another host.
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import "graphiql/style.css";
import { createElement } from "react";
import { createRoot } from "react-dom/client";

// Monaco runs its language services in workers; build.js bundles them beside this file.
const WORKERS = { json: "json.worker.js", graphql: "graphql.worker.js" };
globalThis.MonacoEnvironment = {
  getWorker(_workerId, label) {
    const file = WORKERS[label] ?? "editor.worker.js";
    return new Worker(new URL(file, import.meta.url), { type: "module" });
  },
};

const DEFAULT_QUERY = `# Keyturn GraphiQL
#
# Most fields need an access token. In the
# admin console (/admin), press "Copy access
# token for GraphiQL", then paste it into the
# Headers tab below. It reads:
#
#   {"Authorization": "Bearer eyJ…"}
#
# Or run the login mutation here with
# refreshTokenDelivery: BODY and paste its
# accessToken (docs/admin-api.md).
#
# Run a query with Ctrl-Enter.

{
  me {
    email
    role
  }
}
`;

// GraphiQL keeps tabs and query history in localStorage, with each query's headers and
// variables. Headers carry bearer tokens, and a login run here carries a password, in its text
// or its variables: headers are blanked, and password arguments and variables emptied, before
// anything is written there. The query is kept, so history still shows and reruns it.
const NAMESPACE = "graphiql:";
const PASSWORD_NAME = /password/i;
// `password: "…"`, `currentPassword: """…"""` in a document's text (GraphQL string literals).
const PASSWORD_ARGUMENT =
  /\b(\w*[Pp]assword)(\s*:\s*)("""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*")/g;

function queryWithoutPasswords(text) {
  return text.replace(PASSWORD_ARGUMENT, '$1$2""');
}

function variablesWithoutPasswords(text) {
  try {
    let found = false;
    const blank = (key, item) => {
      if (!PASSWORD_NAME.test(key) || typeof item !== "string") return item;
      found = true;
      return "";
    };
    const cleaned = JSON.stringify(JSON.parse(text), blank, 2);
    return found ? cleaned : text; // the developer's own layout, when there was nothing to empty
  } catch {
    // Half-typed JSON: empty what looks like a password's value all the same.
    return text.replace(/("[^"]*password[^"]*"\s*:\s*)"(?:[^"\\]|\\.)*"?/gi, '$1""');
  }
}

function withoutSecrets(key, value) {
  if (key === `${NAMESPACE}query`) return queryWithoutPasswords(value);
  if (key === `${NAMESPACE}variables`) return variablesWithoutPasswords(value);
  try {
    return JSON.stringify(JSON.parse(value), (name, item) => {
      if (name === "headers") return null;
      if (typeof item !== "string") return item;
      if (name === "query") return queryWithoutPasswords(item);
      if (name === "variables") return variablesWithoutPasswords(item);
      return item;
    });
  } catch {
    return value; // neither: a setting such as the theme
  }
}

const storage = {
  getItem: (key) => localStorage.getItem(key),
  setItem(key, value) {
    if (key === `${NAMESPACE}headers`) return;
    localStorage.setItem(key, withoutSecrets(key, value));
  },
  removeItem: (key) => localStorage.removeItem(key),
  get length() {
    return Object.keys(localStorage).filter((key) => key.startsWith(NAMESPACE)).length;
  },
  clear() {
    for (const key of Object.keys(localStorage)) {
      if (key.startsWith(NAMESPACE)) localStorage.removeItem(key);
    }
  },
};

// The page is served at the GraphQL endpoint itself. Same-origin credentials let the
// refresh cookie ride along, so `mutation { refresh { accessToken } }` works here too.
const fetcher = createGraphiQLFetcher({
  url: new URL(window.location.pathname, window.location.origin).href,
  fetch: (input, init) => window.fetch(input, { ...init, credentials: "same-origin" }),
});

createRoot(document.getElementById("graphiql")).render(
  createElement(GraphiQL, {
    fetcher,
    storage,
    defaultQuery: DEFAULT_QUERY,
    defaultEditorToolsVisibility: "headers",
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    showPersistHeadersSettings: false,
  }),
);
