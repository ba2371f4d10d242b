"""The one error generation raises, so the generation lane maps every cause the same way."""

from __future__ import annotations


class GenerationFailed(Exception):
    """Content could not be made. `permanent`: trying again cannot help (a refusal, a broken
    limit, a bad template, a 4xx) and the job fails with `error_class: generation`; otherwise it
    is retried until the occurrence is due, not before `retry_after` seconds when given."""

    def __init__(self, message: str, *, permanent: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
