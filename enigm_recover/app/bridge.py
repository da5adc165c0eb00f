"""The bridge from engine threads to the app: SSH prompts answered in dialogs, notices in the screen.

The engine runs in a worker thread (and SFTP in its own event-loop thread); it
asks for secrets through a ``Prompter``. This one blocks the asking thread
while the app shows a masked dialog, and never echoes or logs the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from enigm_recover.app.app import RecoverApp


class UIPrompter:
    """``enigm_recover.sources.ssh.Prompter`` for the app."""

    def __init__(self, app: "RecoverApp") -> None:
        self.app = app

    def ask_secret(self, prompt: str) -> str:
        from enigm_recover.errors import AuthenticationFailed

        try:
            answer = self.app.call_from_thread(self.app.ask_secret, prompt)
        except RuntimeError:  # the app is closing
            answer = None
        if answer is None:
            raise AuthenticationFailed(f"the SSH connection asked for input ({prompt.strip()}) and none was given",
                                       "connect again and answer the prompt")
        return answer

    def notice(self, message: str) -> None:
        self.app.call_later(self.app.post_notice, message)  # thread-safe: posts a message to the app
