"""JSON parsing that cannot be made to crash.

Python's ``json`` recurses once per nesting level. A body of 100 000 ``[``
exhausts the interpreter's recursion limit, and ``RecursionError`` is not the
``ValueError`` DRF's parser turns into a 400: the request would end in a 500,
on the unauthenticated token endpoint as on every other. This parser answers
such a body as what it is, malformed input.
"""

from collections.abc import Mapping
from typing import IO, Any

from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    def parse(self, stream: IO[Any], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_("JSON parse error - the document is nested too deeply.")) from None
