"""Keyturn: token authentication and session management as a GraphQL service."""
