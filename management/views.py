"""Sign-in for the analyst pages and the admin: rate limited per client IP, fail closed without sessions.

Why: the login forms are the only place a password is checked, so they are
where guessing happens. Failed attempts are counted per client IP
(``LOGIN_RATE_LIMIT``, default 10/m) with django-ratelimit in the default
cache; over the limit a POST is answered 429 before the password is checked
(successful sign-ins do not count). Like the API's limits the counter fails
open when Redis is down.

Sessions live in Redis when ``REDIS_URL`` is set, so with Redis down a
sign-in could not be remembered: Django's cache session backend would retry
thousands of session keys and then raise (a 500). The sign-in POST instead
answers 503 at once with a clear message (fail closed: nobody gets a session
that does not exist), while the login page itself still renders.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django_ratelimit.core import get_usage

from .ratelimit import client_ip

logger = logging.getLogger(__name__)

LOGIN_GROUP = "auth.login"


def _failed_logins(request: HttpRequest, *, increment: bool) -> dict | None:
    return get_usage(request, group=LOGIN_GROUP, key=client_ip, rate=settings.LOGIN_RATE_LIMIT, increment=increment)


def _plain_response(message: str, status: int, retry_after: int) -> HttpResponse:
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(retry_after)
    return response


def login_guarded(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a login view (ours or the admin's): 429 over the failure limit.

    A POST that does not redirect is a failed sign-in (both Django login views
    re-render the form on bad credentials and redirect on success).
    """

    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST" or not settings.RATELIMIT_ENABLE:
            return view(request, *args, **kwargs)
        usage = _failed_logins(request, increment=False)
        if usage is not None and usage["count"] >= usage["limit"]:
            logger.warning("auth.login_rate_limited", extra={"remote_addr": request.META.get("REMOTE_ADDR"), "path": request.path})
            return _plain_response("Too many failed sign-ins from this address. Try again later.", 429, max(1, usage["time_left"]))
        response = view(request, *args, **kwargs)
        if response.status_code == 200:
            _failed_logins(request, increment=True)
            logger.info("auth.login_failed", extra={"remote_addr": request.META.get("REMOTE_ADDR"), "path": request.path})
        return response

    guarded.__name__ = getattr(view, "__name__", "login")
    guarded.__doc__ = view.__doc__
    return guarded


@method_decorator(login_guarded, name="dispatch")
class RateLimitedLoginView(LoginView):
    """The analyst pages' sign-in (``accounts/login/``) with the guard above."""
