"""The three ways a request can fail, as the plugins see them."""


class LamaClientError(Exception):
    """Base class of every error this package raises."""


class BackendUnavailable(LamaClientError):
    """No backend answers at the address, or it went away while a job was running."""


class JobCancelled(LamaClientError):
    """The job was cancelled (by this client, or because the server is shutting down)."""


class BackendError(LamaClientError):
    """The backend answered with an `error` reply: a stable `code` and a human `message`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
