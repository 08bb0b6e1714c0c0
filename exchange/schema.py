"""OpenAPI pieces shared by every app's API: the contract's error shape."""

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers


@extend_schema_serializer(component_name="Error")
class ErrorSerializer(serializers.Serializer):
    """The contract's error shape, for every 4xx answer (see exchange.errors)."""

    code = serializers.CharField(help_text="snake_case reason, e.g. invalid, kyc_not_approved, throttled")
    detail = serializers.CharField(help_text="A human sentence.")
    # The metaclass takes declared fields off the class, so this one does not
    # shadow Serializer.fields; mypy can't know that.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per input field; empty when the error is not about one field.",
    )
