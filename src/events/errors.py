"""Domain errors. Each carries the exit code of the contract; only the CLI prints them."""


class CoordError(Exception):
    exit_code = 1
    code = "error"

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra


class UsageError(CoordError):
    exit_code = 2
    code = "usage"


class BadPayload(UsageError):
    code = "bad_payload"


class Ambiguous(UsageError):
    code = "ambiguous"


class NotFound(CoordError):
    exit_code = 3
    code = "not_found"


class NoHome(NotFound):
    code = "no_home"


class UnknownWorker(NotFound):
    code = "unknown_worker"


class UnknownEvent(NotFound):
    code = "unknown_event"


class Refused(CoordError):
    exit_code = 4
    code = "refused"


class IllegalTransition(Refused):
    code = "illegal_transition"


class NotYours(Refused):
    code = "not_yours"


class NothingToClaim(Refused):
    code = "nothing_to_claim"


class Cycle(Refused):
    code = "cycle"


class NotReady(Refused):
    code = "not_ready"


class IntegrityError(CoordError):
    exit_code = 5
    code = "integrity"


class TimedOut(CoordError):
    exit_code = 6
    code = "timeout"


class Busy(CoordError):
    exit_code = 7
    code = "busy"


class StaleAttempt(Refused):
    """A stamped action whose attempt is no longer the current one (a zombie's)."""

    code = "stale_attempt"
