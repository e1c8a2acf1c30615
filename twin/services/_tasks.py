"""Cancelling tasks so that they end, on every Python we support.

On Python 3.11, :func:`asyncio.wait_for` swallows a cancellation that
arrives in the same loop iteration as its inner future's result (fixed in
3.12, CPython gh-86296). The ``ocpp`` package awaits every answer with
``wait_for``: a charge point's task cancelled at that moment goes on as if
nothing happened, and ``task.cancel(); await task`` waits for ever. That hung
``chargetwin serve`` on Ctrl-C, once in a while, under load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]

log = logging.getLogger("chargetwin.tasks")

_AGAIN_S = 0.25  # how long a cancelled task gets before it is cancelled again


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], *, patience: float = 10.0) -> None:
    """Cancel ``tasks`` and wait until they have ended, cancelling again those that carry on.

    Gives up after ``patience`` seconds, with a warning naming what still
    runs: a stop must end. Their results and exceptions are not wanted.
    """
    pending = {task for task in tasks if not task.done()}
    deadline = time.monotonic() + patience
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - time.monotonic()
        if left <= 0:
            names = ", ".join(sorted(_name(task) for task in pending))
            log.warning("%d task(s) still running %.0f s after being cancelled, left behind: %s",
                        len(pending), patience, names)
            return
        done, pending = await asyncio.wait(pending, timeout=min(_AGAIN_S, left))
        for task in done:  # retrieved, so that asyncio does not log them as never retrieved
            if not task.cancelled():
                task.exception()


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
