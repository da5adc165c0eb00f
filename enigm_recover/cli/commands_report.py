"""`report RUN`: the after-action report of a run, for the facilitator."""

from __future__ import annotations

from enigm_recover.cli.context import Context
from enigm_recover.cli.output import emit_json


def cmd_report(ctx: Context) -> int:
    from enigm_recover.recovery.after_action import build, find_run_folder, render_markdown, write

    folder = find_run_folder(ctx.locations.state_dir, ctx.args.run)
    aar = build(folder)
    markdown, toml = write(aar, folder)
    if ctx.args.json:
        emit_json({**aar.as_dict(), "files": {"markdown": str(markdown), "toml": str(toml)}})
        return 0
    print(render_markdown(aar), end="")
    print(f"\n(written to {markdown} and {toml})")
    return 0
