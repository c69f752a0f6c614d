"""OpenAPI: the token scheme, and the error shape on every operation."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from .errors import ErrorSerializer
from .idempotency import HEADER


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "payments.integration.tokens.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "bo_<prefix>_<secret>",
            "description": "An API token from the console or `manage.py create_api_token`: "
            "scoped, expiring (24 hours by default), bound to one merchant or to staff.",
        }


def add_error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: every operation documents the error shape for the refusals any
    endpoint can give (bad input, no or bad token, scope, not found, rate limit)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "Error",
        {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "errors": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["type", "message", "errors"],
        },
    )
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    descriptions = {
        "400": "invalid input; `errors` names each field",
        "401": "no token, or an unknown, expired or revoked one",
        "403": "the token lacks the scope (or is not a staff token where one is needed)",
        "404": "no such object for this token",
        "429": "rate limited; see Retry-After",
    }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, description in descriptions.items():
                responses.setdefault(code, {"description": description, "content": error})
    return result


def error_response(description: str) -> OpenApiResponse:
    """An endpoint's own refusal in the schema: the one error shape, and when it is given."""
    return OpenApiResponse(ErrorSerializer, description=description)


class RowActionSchema(AutoSchema):
    """A row action's operation read from what the view declares (see views.RowActionApi): the
    body its `input_serializer_class` takes (none without one), its `serializer_class` answer
    with `success_status`, and its own `refusals`, each status with when it is given."""

    def get_request_serializer(self) -> Any:
        view: Any = self.view
        return view.input_serializer_class

    def get_response_serializers(self) -> Any:
        view: Any = self.view
        refusals = {code: error_response(when) for code, when in view.refusals.items()}
        return {view.success_status: view.serializer_class, **refusals}


IDEMPOTENCY_PARAMETER = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="a unique value per operation (e.g. a UUID), reused on retries; the first "
    "answer is replayed for 24 hours",
)


def idempotent_operation(*, request: Any, responses: dict[int, Any]) -> Any:
    """The schema of a POST that `idempotency.idempotent` runs: the key header required."""
    return extend_schema(request=request, parameters=[IDEMPOTENCY_PARAMETER], responses=responses)
