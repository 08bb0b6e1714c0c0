from typing import Any

from django.http import HttpRequest


def membership(request: HttpRequest) -> dict[str, Any]:
    """Navigation by role: what the signed-in person may see. Filled in by accounts."""
    return {}
