"""Scope checks shared by every API view.

A view names the scope each HTTP method needs in ``required_scopes``
(e.g. ``{"GET": "read", "POST": "manage"}``). API keys must carry that scope.
Logged-in analysts (session auth, used by the pages' refresh calls) may read;
staff may also manage. Ingest and predict are for keys only.
"""
from rest_framework.permissions import BasePermission

from .authentication import KeyPrincipal
from .models import Scope

SESSION_SCOPES = {Scope.READ: "is_active", Scope.MANAGE: "is_staff"}


def required_scope(view, method: str) -> str | None:
    scopes = getattr(view, "required_scopes", None) or {}
    action = getattr(view, "action", None)
    if action and action in scopes:
        return scopes[action]
    return scopes.get(method, scopes.get("*"))


class HasScope(BasePermission):
    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request, view) -> bool:
        scope = required_scope(view, request.method)
        if scope is None:
            # A method the view does not implement at all is let through to DRF's 405
            # (it runs nothing); an implemented method that names no scope is closed, not open.
            return request.method.lower() not in {m.lower() for m in view.allowed_methods}
        principal = request.auth
        if isinstance(principal, KeyPrincipal):
            return scope in principal.scopes
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            return False
        flag = SESSION_SCOPES.get(scope)
        return bool(flag and getattr(user, flag, False))
