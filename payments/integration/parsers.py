"""JSON bodies the database can store: no NUL, no lone surrogate, no absurd nesting.

json.loads accepts "\\u0000" and a lone "\\ud800", and recurses until Python's stack runs out;
PostgreSQL refuses NUL in text and psycopg cannot encode a lone surrogate, so each of these
was a 500 once it reached a save. Refused here, each is a 400 naming the problem.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64


def _bad_string(value: str) -> str | None:
    if "\x00" in value:
        return "a NUL character"
    if any("\ud800" <= char <= "\udfff" for char in value):
        return "an unpaired surrogate"
    return None


def check_json(data: Any) -> None:
    """Walks the parsed document without recursion; raises ParseError on the first bad part."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.")
        if isinstance(value, str):
            problem = _bad_string(value)
            if problem:
                raise ParseError(f"JSON string contains {problem}.")
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = _bad_string(key)
                if problem:
                    raise ParseError(f"JSON key contains {problem}.")
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.") from None
        check_json(data)
        return data
