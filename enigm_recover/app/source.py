"""Stage 2, source: connect and list the snapshots (host-key, passphrase and one-time-code dialogs)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Label, Static

from enigm_recover.app.stage import StageScreen
from enigm_recover.app.widgets import ProgressPanel


class SourceScreen(StageScreen):
    STAGE = "Source"
    BINDINGS = [Binding("r", "retry", "Connect again", tooltip="Connect to the source and list it again")]

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def compose_body(self) -> ComposeResult:
        yield Label("Snapshot source", classes="section-title")
        yield Static("", id="source-info")
        yield ProgressPanel(id="progress")
        yield Static("", id="notices")

    def on_mount(self) -> None:
        super().on_mount()
        ex = self.ex
        shown = self.recover.options.shown
        info = Text()
        info.append(f"{'Source:':<17}", style="bold")
        info.append(shown(ex.settings.source) + "\n")
        info.append(f"{'Trusted signers:':<17}", style="bold")
        info.append(shown(ex.settings.allowed_signers))
        if ex.settings.source.startswith("sftp://"):
            info.append("\n\nOver SSH with strict host keys: an unknown host is shown to you to compare its "
                        "fingerprint; key passphrases and one-time codes are asked in hidden fields.")
        self.query_one("#source-info", Static).update(info)
        self.connect()

    def connect(self) -> None:
        self.failed = False
        self.query_one(ProgressPanel).start(Text(f"Connecting to {self.recover.options.shown(self.ex.settings.source)} "
                                                 "and reading the manifests…"))
        self.recover.run_engine(lambda progress: self.recover.list_snapshots(), done=self._listed,
                                failed=self._failed, label="listing the source")
        self.refresh_bindings()

    def _listed(self, summaries: list[Any]) -> None:
        from enigm_recover.app.snapshots import SnapshotsScreen

        screen = SnapshotsScreen(summaries)
        screen.step_index = self.step_index
        self.app.switch_screen(screen)

    def _failed(self, error: BaseException) -> None:
        self.failed = True
        self.query_one(ProgressPanel).finish("Could not list the source", "press r to connect again")
        self.refresh_bindings()

    def add_notice(self, message: str) -> None:
        notices = self.query_one("#notices", Static)
        text = Text("\n".join(self.recover.options.shown(m) for m in self.recover.notices[-8:]), style="dim")
        notices.update(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retry":
            return self.failed and not self.recover.busy
        return True

    def action_retry(self) -> None:
        if self.failed and not self.recover.busy:
            self.connect()
