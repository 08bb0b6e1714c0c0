from django import template

register = template.Library()

BADGE_BY_STATUS = {
    "approved": "badge-ok",
    "rejected": "badge-bad",
}


@register.filter
def kyc_badge(status: str) -> str:
    """The badge class for a KYC status: green approved, red rejected, amber otherwise."""
    return BADGE_BY_STATUS.get(status, "badge-warn")

