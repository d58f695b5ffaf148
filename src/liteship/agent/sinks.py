"""Where results go: ``stdout`` (JSON lines), ``file:PATH`` (JSON lines, appended), ``http:URL`` (POST).

Also the agent's structured logs: one JSON object per line on stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from liteship.agent.quiet import private_stderr
from liteship.errors import UsageError

log = logging.getLogger("liteship.agent")


class StdoutSink:
    def write(self, result: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        pass


class FileSink:
    """Appends JSON lines to a file (flushed per line, so a reader tailing it sees whole lines)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, result: dict[str, Any]) -> None:
        self.f.write(json.dumps(result) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


class HttpSink:
    """POSTs each result as JSON; a failing hook is logged, never stops inference."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        import httpx

        self.url, self.http = url, httpx.Client(timeout=timeout)

    def write(self, result: dict[str, Any]) -> None:
        try:
            self.http.post(self.url, json=result).raise_for_status()
        except Exception as e:  # noqa: BLE001 - any hook failure is only logged
            log.warning("result hook failed", extra={"fields": {"url": self.url, "error": str(e)}})

    def close(self) -> None:
        self.http.close()


def open_sink(spec: str) -> Any:
    """``stdout``, ``file:PATH`` or ``http:URL`` / ``https:URL``."""
    if spec == "stdout":
        return StdoutSink()
    kind, _, rest = spec.partition(":")
    if kind == "file" and rest:
        return FileSink(rest)
    if kind in ("http", "https"):
        return HttpSink(rest if rest.startswith("http") else spec)
    raise UsageError(f"unknown sink {spec!r}; expected stdout, file:PATH or http:URL.")


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "msg", ...fields}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": round(time.time(), 3), "level": record.levelname.lower(), "msg": record.getMessage()}
        doc.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr, through a duplicate of fd 2 so native-output silencing never hides them."""
    for old in log.handlers:
        if isinstance(old, logging.StreamHandler) and old.stream not in (sys.stderr, sys.__stderr__):
            old.stream.close()
    handler = logging.StreamHandler(private_stderr())
    handler.setFormatter(JsonFormatter())
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def event(msg: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``msg`` with structured ``fields``."""
    log.log(level, msg, extra={"fields": fields})


__all__ = ["StdoutSink", "FileSink", "HttpSink", "open_sink", "setup_logging", "event", "JsonFormatter"]
