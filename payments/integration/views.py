"""The base of every integration endpoint: scopes per method, throttles per token and per IP,
cursor pagination that costs the same on any page, and the JSON 404 for unknown paths."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import BasePagination, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.request_types import AuthenticatedRequest

from .permissions import HasScope
from .schema import RowActionSchema
from .throttling import IPRateThrottle, TokenRateThrottle


class IdCursorPagination(CursorPagination):
    """No COUNT and no OFFSET: a deep page costs what the first does.

    DRF checks a cursor's base64 and offset but not its position, which goes straight into the
    query: a crafted "p=abc" or a position past bigint was a 500. Checked here, it is the
    same 404 "Invalid cursor" as any other bad cursor.
    """

    ordering: str | tuple[str, ...] = "-id"
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"

    def decode_cursor(self, request: Request) -> Any:
        cursor = super().decode_cursor(request)
        position = cursor.position if cursor is not None else None
        # DRF decodes the position from the cursor as text; its stub says int.
        if position is not None and not self.position_is_valid(cast(str, position)):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def position_is_valid(self, position: str) -> bool:
        try:
            return -(2**63) <= int(position) < 2**63
        except ValueError:
            return False


if TYPE_CHECKING:
    _ApiViewBase = APIView  # the mixin is only used on APIViews
else:
    _ApiViewBase = object


class ApiMixin(_ApiViewBase):
    """Scopes per method, throttles per token, and per IP before authentication."""

    permission_classes = [HasScope]
    throttle_classes = [TokenRateThrottle]
    # Every list pages by cursor, unless its view says otherwise.
    pagination_class: type[BasePagination] | None = IdCursorPagination
    required_scopes: dict[str, str] = {}
    staff_only = False

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        ip_throttle = IPRateThrottle()
        if not ip_throttle.allow_request(request, self):
            # DRF's own check_throttles passes None when no wait is known; the stub says float.
            self.throttled(request, ip_throttle.wait())  # type: ignore[arg-type]
        super().initial(request, *args, **kwargs)


def validated(
    serializer_class: type[serializers.Serializer], data: Any, **kwargs: Any
) -> dict[str, Any]:
    """`data` as `serializer_class` validates it; invalid, a 400 naming each field."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# A POST that acts on one row of `get_queryset()` (404 outside the token's scope): the body
# validated by `input_serializer_class` when the action takes one, then `act`, the answer
# `serializer_class` with `success_status`. The schema reads the same attributes, and
# `refusals`, the action's own error statuses with when each is given. No docstring on the
# class or its `post`: the schema describes each action by its own class's docstring.
class RowActionApi(ApiMixin, generics.GenericAPIView):
    schema = RowActionSchema()
    input_serializer_class: type[serializers.Serializer] | None = None
    success_status: int = status.HTTP_200_OK
    refusals: dict[int, str] = {}

    def act(self, row: Any, values: dict[str, Any], actor: Any) -> Any:
        raise NotImplementedError

    def post(self, request: AuthenticatedRequest, pk: int) -> Response:
        row = self.get_object()
        values = {}
        if self.input_serializer_class is not None:
            values = validated(self.input_serializer_class, request.data)
        result = self.act(row, values, request.user)
        return Response(self.get_serializer(result).data, status=self.success_status)


class NotFoundApi(APIView):
    """Every other path under /api/: the JSON 404."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise NotFound

    post = put = patch = delete = get
