"""The guided recovery app (Textual): a thin face over the runbook executor.

Importing this package is cheap; Textual and the screens are imported by
``run_app`` (and the engine only after the first paint, in workers).
"""

from __future__ import annotations

from enigm_recover.app.options import AppOptions, DrillInfo

__all__ = ["AppOptions", "DrillInfo", "run_app"]


def run_app(options: AppOptions) -> int:
    """Open the app in the terminal; print where the run stands when it closes. Returns the exit code."""
    from enigm_recover.app.app import RecoverApp

    app = RecoverApp(options)
    outcome = app.run()
    if outcome or app.outcome:
        print(outcome or app.outcome)
    return app.return_code or 0
