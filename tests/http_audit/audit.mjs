// Runs graphql-http's GraphQL-over-HTTP audit suite against a live server and prints one JSON
// object per audit on stdout: {"id", "name", "status", "reason"}. The pytest test that starts
// the server (tests/security/test_http_audit.py) decides what must pass.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs URL');
  process.exit(2);
}

const results = await auditServer({ url });
for (const result of results) {
  const line = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    line.reason = result.reason;
    line.httpStatus = result.response.status;
  }
  console.log(JSON.stringify(line));
}
