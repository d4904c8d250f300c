"""Logging set-up: plain text for a terminal, or one JSON object per line for log pipelines.

Log lines written while an operation is being handled carry its id (`operation_id`), so one job's
story can be followed across the API and worker processes.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

_operation: contextvars.ContextVar[str | None] = contextvars.ContextVar("operation_id", default=None)


@contextlib.contextmanager
def operation_context(operation_id: str) -> Iterator[None]:
    token = _operation.set(operation_id)
    try:
        yield
    finally:
        _operation.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        operation_id = _operation.get()
        if operation_id is not None:
            entry["operation_id"] = operation_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _OperationText(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        operation_id = _operation.get()
        return f"{line} [{operation_id}]" if operation_id else line


def configure_logging(log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_OperationText("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # Their start-up chatter (arq's job lines, alembic's plugin list) would bury the service's own.
    for noisy in ("arq", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
