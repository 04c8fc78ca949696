"""What an unexpected exception leaves behind: one line on the console, the whole traceback on file.

A bad config is the user's to fix and needs no traceback (:class:`~runner.errors.ConfigError`).
Anything else is a bug or a broken environment, and on a cluster the job's directory
may be all anyone ever sees of it: so the full traceback goes to the job's
``tape-runner.log`` (Hydra's file handler, never the console) and to ``results.json``.
"""

from __future__ import annotations

import logging
import traceback


def one_line(err: BaseException) -> str:
    """``Type: first line of the message`` for the console and the summary."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {first}".rstrip(": ")


def keep_traceback(err: BaseException, logger: logging.Logger) -> str:
    """Write ``err``'s full traceback to every file handler of the logging tree; return it."""
    text = "".join(traceback.format_exception(err)).rstrip("\n")
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "%s", (text,), None)
    for handler in _file_handlers(logger):
        if record.levelno >= handler.level:
            handler.handle(record)
    return text


def _file_handlers(logger: logging.Logger) -> list[logging.FileHandler]:
    """The file handlers a record from ``logger`` reaches (Hydra puts its log file on the root)."""
    found: list[logging.FileHandler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found += [h for h in current.handlers if isinstance(h, logging.FileHandler) and h not in found]
        current = current.parent if current.propagate else None
    return found
