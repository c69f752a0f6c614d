"""Streamed CSV downloads: rows are written as they are read, never held in memory.

Every CSV export goes through csv_response, so every one neutralises formula cells."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence

from django.http import StreamingHttpResponse
from django.utils import timezone

# OWASP "CSV injection": a spreadsheet runs a cell starting with one of these as a formula
# (=HYPERLINK(...), +cmd|...). A leading single quote makes it text; the value still reads true.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(
    header: Sequence[str], rows: Iterable[Sequence[object]], *, stem: str
) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow([neutralise(cell) for cell in header])
        for row in rows:
            yield writer.writerow([neutralise(cell) for cell in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    attach(response, stem, "csv")
    return response


def attach(response: StreamingHttpResponse, stem: str, extension: str) -> None:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{stem}-{stamp}.{extension}"'
