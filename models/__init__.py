"""Tortoise models: the tables and the queries on them."""

from models.audit import AuditEvent, AuditKind
from models.sessions import Session, SessionStatus
from models.users import Role, User

__all__ = ["AuditEvent", "AuditKind", "Role", "Session", "SessionStatus", "User"]
__models__ = [User, Session, AuditEvent]
