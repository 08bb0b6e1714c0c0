from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = _("Members and KYC")

    def ready(self) -> None:
        # Registers the OpenAPI extension for ApiTokenAuthentication.
        from accounts import schema  # noqa: F401
