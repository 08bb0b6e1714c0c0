"""``Authorization: Token <key>`` for the API, against hashed ApiTokens."""

import hashlib
from datetime import timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import ApiToken, KycCase, Membership, Organisation, User
from exchange.rawsql import Columns, fetch

# Writing last_used_at on every request would turn each read into a write;
# a minute's resolution is plenty to see whether a token is still in use.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid token header."))
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed(_("Invalid token header.")) from None
        token = _token_with_membership(hash_token(key))
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


_TOKEN, _USER, _MEMBERSHIP = Columns(ApiToken, "t"), Columns(User, "u"), Columns(Membership, "m")
_ORGANISATION, _KYC = Columns(Organisation, "o"), Columns(KycCase, "k")
# The user's membership, loaded with the token (``accounts.selectors.membership_for`` uses it).
PRELOADED_MEMBERSHIP = "_preloaded_membership"


def _token_with_membership(key_hash: str) -> ApiToken | None:
    """The token with its user, and the user's membership, organisation and
    KYC case, in one plain statement: every API request authenticates, and
    an order then asks the trading gate about the same membership."""
    rows = fetch(
        f"SELECT {_TOKEN.sql}, {_USER.sql}, {_MEMBERSHIP.sql}, {_ORGANISATION.sql}, {_KYC.sql} "  # noqa: S608
        f"FROM {_TOKEN.table} t JOIN {_USER.table} u ON u.id = t.user_id "
        f"LEFT JOIN {_MEMBERSHIP.table} m ON m.user_id = u.id "
        f"LEFT JOIN {_ORGANISATION.table} o ON o.id = m.organisation_id "
        f"LEFT JOIN {_KYC.table} k ON k.organisation_id = o.id WHERE t.key_hash = %s",
        [key_hash],
    )
    if not rows:
        return None
    row = rows[0]
    token, at = _TOKEN.load(row)
    user, at = _USER.load(row, at)
    membership, at = _MEMBERSHIP.load_or_none(row, at)
    ApiToken.user.field.set_cached_value(token, user)
    if membership is not None:
        organisation, at = _ORGANISATION.load(row, at)
        kyc, _at = _KYC.load_or_none(row, at)
        Organisation.kyc.related.set_cached_value(organisation, kyc)
        Membership.organisation.field.set_cached_value(membership, organisation)
        Membership.user.field.set_cached_value(membership, user)
    setattr(user, PRELOADED_MEMBERSHIP, membership)
    return token


def token_from_request(request: Any) -> ApiToken | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiToken) else None
