"""Cancelling long engine work safely, at the next progress report.

The engine's long operations (fetching, hashing, diffing, restoring) report
progress only at points where stopping is safe: a payload download keeps its
partial file as a verified-later prefix, and a restore batch commits together
with its journal row *before* its progress is reported. So a face that wants
to stop a running operation sets a ``CancelToken`` and wraps the operation's
progress callback with ``cancellable``: at the next report the wrapper raises
``InterruptedByUser``. The runbook executor records the step as failed and the
run stays at that step, resumable (a restore continues from its journal).

Nothing here knows about threads beyond a ``threading.Event``: the token may be
set from any thread (a UI's event loop) while the work runs in another.
"""

from __future__ import annotations

import threading

from enigm_recover.errors import InterruptedByUser
from enigm_recover.progress import Progress, ProgressCallback, no_progress

CANCEL_HINT = "nothing was left half-written: run the step again to continue where it stopped"


class CancelToken:
    """A one-way switch: once cancelled, it stays cancelled."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled by the operator") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, where: str = "") -> None:
        """Raise ``InterruptedByUser`` when cancelled."""
        if self._event.is_set():
            place = f" during {where}" if where else ""
            raise InterruptedByUser(f"{self.reason}{place}", CANCEL_HINT)


def _describe(progress: Progress) -> str:
    if progress.total:
        return f"{progress.label} ({progress.done:,} of {progress.total:,} {progress.unit})"
    return progress.label


def cancellable(progress: ProgressCallback = no_progress, token: CancelToken | None = None) -> ProgressCallback:
    """A progress callback that forwards each report, then raises ``InterruptedByUser`` if ``token`` was
    cancelled. The report is forwarded first so a face shows how far the work got (a restore batch
    reported here has already committed)."""
    token = token if token is not None else CancelToken()

    def report(p: Progress) -> None:
        progress(p)
        token.check(_describe(p))

    report.token = token  # type: ignore[attr-defined]
    return report
