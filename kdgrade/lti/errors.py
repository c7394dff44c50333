"""The refusal every LTI entry point raises: a 4xx status and a message for the person in the browser."""

from __future__ import annotations


class LaunchRefused(Exception):
    """A login or launch kdgrade refuses: `status` is the 4xx code, `reason` a message for the user."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
