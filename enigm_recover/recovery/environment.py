"""A snapshot is bound to the environment it was sealed in (signed in its manifest).

A restore into a target whose configured environment differs is refused before any share is asked
for and before anything is written, unless the operator explicitly allows it; an allowed mismatch is
recorded in the recovery's audit log. With no environment configured for the target there is nothing
to compare, and the audit log says so.
"""

from __future__ import annotations

from typing import Any

from enigm_recover.errors import EnvironmentMismatch
from enigm_recover.snapshot.manifest import Manifest
from enigm_recover.state.url import safe_url


def bind_environment(recovery: Any, manifest: Manifest, target: str, target_environment: str | None,
                     allow_mismatch: bool = False) -> None:
    """Refuse ``manifest`` for a target of another environment, or record the operator's explicit override."""
    shown = safe_url(target)  # a password in the URL is never recorded or shown
    facts = {"snapshot": manifest.id, "snapshot_environment": manifest.environment, "target": shown,
             "target_environment": target_environment}
    if target_environment is None:
        recovery.record("environment-not-configured", inputs=facts,
                        detail="the target has no configured environment: the snapshot's was not compared")
        return
    if manifest.environment == target_environment:
        return
    if not allow_mismatch:
        recovery.record("environment-mismatch", inputs=facts, outcome="refused")
        raise EnvironmentMismatch(
            f"snapshot {manifest.id} was sealed in environment {manifest.environment!r}, but the target "
            f"{shown} is configured as {target_environment!r}; nothing was written")
    recovery.record("environment-mismatch-allowed", inputs=facts, outcome="allowed",
                    detail="the operator allowed restoring across environments")
