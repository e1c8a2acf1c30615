"""Stopping tasks that ignore a cancellation: what hung ``chargetwin serve`` on Ctrl-C under load."""

from __future__ import annotations

import asyncio
import logging

import pytest

from chargetwin.twin.services._tasks import cancel_and_wait


async def _stubborn(queue: asyncio.Queue[int], ignored: int) -> None:
    """Ignores the first ``ignored`` cancellations, as a task inside a 3.11 ``wait_for`` can."""
    while True:
        try:
            await queue.get()
        except asyncio.CancelledError:
            if ignored == 0:
                raise
            ignored -= 1


def test_a_task_that_carries_on_after_one_cancel_is_cancelled_again() -> None:
    async def main() -> None:
        task = asyncio.create_task(_stubborn(asyncio.Queue(), ignored=2))
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait((task,)), 5)
        assert task.cancelled()

    asyncio.run(main())


def test_one_cancel_and_await_is_not_enough() -> None:
    """The naive stop this replaces: it waits for ever on the same task."""

    async def main() -> None:
        task = asyncio.create_task(_stubborn(asyncio.Queue(), ignored=1))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), 0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_task_that_never_ends_is_left_behind_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        task = asyncio.create_task(_stubborn(asyncio.Queue(), ignored=50), name="never-ends")
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait((task,), patience=0.6), 5)
        assert not task.done()
        while not task.done():  # end it here, or asyncio.run would wait for it
            task.cancel()
            await asyncio.sleep(0)

    with caplog.at_level(logging.WARNING, logger="chargetwin.tasks"):
        asyncio.run(main())
    assert "never-ends" in caplog.text and "still running" in caplog.text


def test_tasks_that_failed_are_collected_without_complaint() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    async def main() -> None:
        task = asyncio.create_task(fails())
        await asyncio.sleep(0)
        await cancel_and_wait((task,))
        assert isinstance(task.exception(), ValueError)

    asyncio.run(main())
