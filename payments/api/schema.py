"""OpenAPI: the token scheme, and the error shape on every operation."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from .serializers import ErrorSerializer

ERROR_CODES = ("400", "401", "403", "404", "429")


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "payments.api.tokens.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "bo_<prefix>_<secret>",
            "description": "An API token from the console or `manage.py create_api_token`: "
            "scoped, expiring (24 hours by default), bound to one merchant or to staff.",
        }


class ApiAutoSchema(AutoSchema):
    def get_response_serializers(self) -> Any:
        responses = super().get_response_serializers()
        if not isinstance(responses, dict):
            responses = {"201" if self.method == "POST" else "200": responses}
        responses = {str(code): value for code, value in responses.items()}
        for code in ERROR_CODES:
            responses.setdefault(code, ErrorSerializer)
        return responses
