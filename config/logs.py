"""Structured logs: one JSON object per line, with the request id (config.request_id).

LOG_FORMAT=json (the default outside DEBUG) or plain. Fields: time (UTC, ISO 8601), level,
logger, message, request_id (empty outside a request or task), process, and the exception's
type and traceback when there is one. Messages are written by our code, which never logs a
secret, a card number or a request body; the access log (config/gunicorn.conf.py) leaves query
strings out.
"""

from __future__ import annotations

import datetime
import json
import logging

from . import request_id


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id.current.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", ""),
            "process": record.process,
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
