from django.apps import AppConfig


class ClearingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "clearing"
