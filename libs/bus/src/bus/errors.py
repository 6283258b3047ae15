"""The one error hierarchy of commands: why a command could not be carried out.

A use case raises `CommandError` (or a subclass: the ElevenLabs client's `UpstreamError`, a
service's own refinement) and its handler turns it into the command's failure event
(`CommandFailed(status_code, error, detail)`, or a service's own such as `CallDialFailed`).
"""

from __future__ import annotations


class CommandError(Exception):
    """A command cannot be carried out.

    `status_code` is the HTTP status the gateway answers with (4xx: the request is at fault; 502:
    upstream failed), `error` a short stable message, `detail` anything more (never a secret).
    """

    def __init__(self, status_code: int, error: str, detail: str | None = None) -> None:
        super().__init__(f"{status_code} {error}: {detail}")
        self.status_code = status_code
        self.error = error
        self.detail = detail
