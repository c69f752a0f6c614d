"""/audits/: search the trail, an object's timeline, exports (CSV, JSON evidence)."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from config.db_router import replica_reads
from config.pagination import LargeTablePaginator
from config.querying import streamed
from config.screens import screen
from config.streaming import attach, csv_response

from . import evidence, presenters, selectors
from .behaviour import staff_activity_record
from .columns import AUDIT_ROW_COLUMNS
from .crypto import envelope
from .crypto.reveal import reveal_state
from .evidence import stream_evidence
from .forms import AuditSearchForm
from .models import StaffActivityKind

log = logging.getLogger(__name__)

# A search's first pages count no further than this (20 pages; a deeper page counts to it):
# counting to EXACT_COUNT_LIMIT read 10,000 scattered rows of a 10M-row trail on every page.
SEARCH_COUNT_LIMIT = 1_000


def _filters(request: HttpRequest) -> tuple[AuditSearchForm, dict[str, Any]]:
    form = AuditSearchForm(request.GET or None)
    if form.is_bound and form.is_valid():
        return form, {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}
    return form, {}


@screen("audits.view_paymentaudit", url=("", "search"))
@replica_reads
def search(request: HttpRequest) -> HttpResponse:
    form, filters = _filters(request)
    page = LargeTablePaginator(
        selectors.audit_search(**filters), 50, count_limit=SEARCH_COUNT_LIMIT
    ).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audits/search.html",
        {"form": form, "page": page, "query": query.urlencode(), "filtered": bool(filters)},
    )


AUDIT_CSV_HEADER = [
    *AUDIT_ROW_COLUMNS,
    "request_id",
    "chain",
    "seq",
    "row_hash",
    "before_state",
    "after_state",
]
# The columns the CSV's rows are made of, read as plain values (no model instance per row).
AUDIT_CSV_COLUMNS = [
    "user__username" if column == "user" else column for column in AUDIT_CSV_HEADER
]


_encode = json.JSONEncoder(sort_keys=True).encode  # json.dumps(sort_keys=True) makes one a call


def _state_json(object_type: str, state: dict[str, Any] | None) -> str:
    """The state as JSON, its envelopes revealed. Most states hold none: their JSON is
    encoded once, and only one that shows the envelope prefix is revealed and encoded again."""
    text = _encode(state)
    if envelope.PREFIX not in text:
        return text
    return _encode(reveal_state(object_type, state))


@screen("audits.view_paymentaudit", url=("export.csv", "export-csv"))
@replica_reads
def export_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The whole filtered result, streamed: not capped, never held in memory."""
    _, filters = _filters(request)
    log.info("audit CSV export by %s with %s", request.user, filters)
    staff_activity_record(user=request.user, kind=StaffActivityKind.EXPORT)
    rows = (
        [
            created_at.isoformat(),
            action_type,
            object_type,
            object_id,
            username,
            ip_address,
            device_id or "",
            request_id,
            chain,
            seq,
            row_hash,
            _state_json(object_type, before_state),
            _state_json(object_type, after_state),
        ]
        for (
            created_at,
            action_type,
            object_type,
            object_id,
            username,
            ip_address,
            device_id,
            request_id,
            chain,
            seq,
            row_hash,
            before_state,
            after_state,
        ) in streamed(selectors.audit_search(**filters).values_list(*AUDIT_CSV_COLUMNS))
    )
    return csv_response(AUDIT_CSV_HEADER, rows, stem="audit-trail")


@screen("audits.view_paymentaudit", url=("evidence.json", "export-evidence"))
@replica_reads
def export_evidence(request: HttpRequest) -> StreamingHttpResponse:
    _, filters = _filters(request)
    rows = selectors.audit_search(**filters).order_by("chain", "seq")
    log.info("audit evidence export by %s with %s", request.user, filters)
    staff_activity_record(user=request.user, kind=StaffActivityKind.EXPORT)
    response = StreamingHttpResponse(
        stream_evidence(
            evidence.values_as_dicts(streamed(rows.values_list(*evidence.COLUMNS))),
            filters=filters,
        ),
        content_type="application/json",
    )
    attach(response, "audit-evidence", "json")
    return response


@screen("audits.view_paymentaudit", url=("objects/<str:object_type>/<str:object_id>/", "object"))
def object_timeline(request: HttpRequest, object_type: str, object_id: str) -> HttpResponse:
    app_label, _, model = object_type.partition(".")
    if not model:
        raise Http404("object type is app_label.model")
    rows = list(
        selectors.audit_search(object_type=object_type, object_id=object_id).order_by(
            "created_at", "id"
        )[:1000]
    )
    entries = list(
        selectors.object_log_entries(app_label=app_label, model=model, object_id=object_id)[:1000]
    )
    currency = presenters.currency_of(object_type, object_id)
    rows.sort(key=presenters.audit_row_order)
    return render(
        request,
        "audits/object.html",
        {
            "object_type": object_type,
            "object_id": object_id,
            "rows_readable": list(
                zip(rows, presenters.audit_rows_readable(rows, currency=currency), strict=True)
            ),
            "entries": entries,
            "currency": currency,
        },
    )
