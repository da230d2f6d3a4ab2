"""Permission classes: the one place that decides who may reach a field."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.permission import BasePermission

from api.errors import AuthError, ErrorCode
from schema.context import Context


class IsAuthenticated(BasePermission):
    message = "Authentication required."
    error_extensions = {"code": ErrorCode.UNAUTHENTICATED.value}

    async def has_permission(
        self, source: Any, info: strawberry.Info[Context, None], **kwargs: Any
    ) -> bool:
        # Raises the precise contract error (UNAUTHENTICATED, TOKEN_EXPIRED, TOKEN_REVOKED).
        await info.context.principal()
        return True


class IsAdmin(BasePermission):
    message = "Administrators only."
    error_extensions = {"code": ErrorCode.FORBIDDEN.value}

    async def has_permission(
        self, source: Any, info: strawberry.Info[Context, None], **kwargs: Any
    ) -> bool:
        principal = await info.context.principal()
        if not principal.is_admin:
            raise AuthError(ErrorCode.FORBIDDEN, self.message)
        return True
