"""Absolute links to this exchange, for e-mails: the address of the server
that is running.

During a request that is the address the reader reached it under (scheme and
host of the request, which Django checks against ALLOWED_HOSTS), built the
way allauth builds its own links (verification, password reset), so every
mail of one request points at the same server. Outside a request (Celery jobs,
management commands) it is ``SITE_URL``, which ``make run`` sets to its own
port (scripts/run.sh) and production sets to the public address.
"""

from allauth.core import context
from allauth.utils import build_absolute_uri
from django.conf import settings


def absolute_url(path: str) -> str:
    """``path`` (e.g. from ``reverse()``) as an absolute URL of the running server."""
    request = context.request  # set for every request by allauth's AccountMiddleware
    if request is not None:
        return build_absolute_uri(request, path)
    return settings.SITE_URL.rstrip("/") + path
