// Bundles GraphiQL 5 for the browser: it ships as ES modules that import React, which is
// CommonJS only, so the browser cannot load it from node_modules as it is.
// Output: ../vendor/graphiql (git-ignored), served by Keyturn under /graphiql/.
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const outdir = `${root}vendor/graphiql`;
const common = {
  absWorkingDir: root,
  bundle: true,
  format: "esm",
  minify: true,
  outdir,
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
  legalComments: "linked",
};

rmSync(outdir, { recursive: true, force: true });
await build({
  ...common,
  entryPoints: { graphiql: "bundle/graphiql.js" },
  loader: { ".ttf": "file", ".woff": "file", ".woff2": "file" },
  assetNames: "[name]-[hash]",
});
await build({
  ...common,
  entryPoints: {
    "editor.worker": "monaco-editor/esm/vs/editor/editor.worker.js",
    "json.worker": "monaco-editor/esm/vs/language/json/json.worker.js",
    "graphql.worker": "monaco-graphql/esm/graphql.worker.js",
  },
});
