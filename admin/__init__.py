"""The admin console: a web page at /admin that is itself a client of the GraphQL API."""
