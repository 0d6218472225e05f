"""Reach (or start) the backend and run one job on it, with errors the user can act on.

Both editor plugins need the same steps: `hello`, autostart when nobody answers and the user set
a command, a second `hello`, then `inpaint`, turning every client error into a message that says
what happened and what to do. Only the sentences about where the user changes settings differ
(the Krita docker, GIMP's LAMA_BACKEND_* environment variables), and each plugin raises its own
error type; `Editor` carries both. Stdlib only, Python 3.8+, relative imports (copied into the
plugin bundles).
"""
import os
import shlex
import threading
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence

from .errors import BackendError, BackendUnavailable, JobCancelled

ProgressCallback = Callable[[float, str], None]
ClientFactory = Callable[..., Any]   # (address, token=...) -> a LamaClient-like object
Starter = Callable[..., Any]         # ensure_backend's signature: (address, argv, timeout=, token=, log_path=)
AutostartCommand = Callable[[], Sequence[str]]  # builds the argv; only called when no backend answers
AUTOSTART_TIMEOUT = 180.0  # seconds: loading big weights on a slow disk takes a while
# A progress stage, reported after `hello` when the backend serves the small model bundled with
# the package: its fills are far worse than big-lama's, and an artist who never reads the
# backend's log must still learn why and what to do. Plugins keep it in their final status.
BUNDLED_MODEL_STAGE = ("using the small built-in model; run `lama-backend fetch big-lama` and restart "
                       "the backend for much better fills")

# What to do about each stable error code; "unauthorized" is the editor's own (Editor.token_hint).
_HINTS = {
    "too_large": "Select a smaller area or lower the context margin.",
    "queue_full": "The backend is busy with other jobs; try again in a moment.",
    "out_of_memory": "Select a smaller area or lower the context margin.",
    "unsupported_protocol": "The %s and the backend come from different versions; update both.",
}


@dataclass(frozen=True)
class Editor:
    """What differs between the editors: the error type and where the user changes settings."""

    error: Callable[[str], Exception]  # the plugin's own error type; its message is shown as is
    plugin_noun: str       # how the editor calls an add-on: "plugin" (Krita), "plug-in" (GIMP)
    token_hint: str        # what to do about a wrong token
    autostart_hint: str    # completes "Start it in a terminal ... or ___": how to make the plugin start it
    check_autostart: str   # what to check after the autostart command failed
    log_path: str          # where an autostarted backend writes its output

    def hint(self, code: str) -> str:
        """The advice for a backend error code ("" when there is none)."""
        if code == "unauthorized":
            return self.token_hint
        text = _HINTS.get(code, "")
        return text % self.plugin_noun if "%s" in text else text


def autostart_argv(command_text: str, address: str, token: Optional[str],
                   posix: Optional[bool] = None) -> List[str]:
    """The argv that starts the backend from the user's autostart command.

    A single word (the path of `lama-backend`) gets `serve --bind ADDRESS [--token TOKEN]`
    appended so it listens where the plugin looks; anything longer is taken as the full command.
    Windows paths keep their backslashes and lose the double quotes around them (`posix`: None
    follows this machine). Raises ValueError for unbalanced quotes.
    """
    posix = os.name != "nt" if posix is None else posix
    words = [w if posix else w.strip('"') for w in shlex.split(command_text.strip(), posix=posix)]
    if len(words) == 1:
        words += ["serve", "--bind", address]
        if token:
            words += ["--token", token]
    return words


def how_to_start_message(address: str, reason: str, editor: Editor) -> str:
    """What to tell the user when no backend answers and none could be started."""
    return ("No LaMa backend answers at %s (%s).\n\nStart it in a terminal with:\n    lama-backend serve --bind %s\n"
            "or %s Nothing was changed." % (address, reason, address, editor.autostart_hint))


def serves_bundled_model(hello: Any) -> bool:
    """Whether a `hello` reply's `model.bundled` says the package's default model serves."""
    model = hello.get("model") if isinstance(hello, dict) else None
    return isinstance(model, dict) and model.get("bundled") is True


def _hello(client: Any, editor: Editor, on_progress: ProgressCallback) -> Any:
    """`client` once its backend answered `hello`; closed, and the error raised, otherwise."""
    try:
        reply = client.hello()
    except BackendUnavailable:
        client.close()
        raise
    except BackendError as exc:
        client.close()
        raise editor.error(("The backend refused the connection: %s. %s"
                            % (exc.message, editor.hint(exc.code))).rstrip()) from None
    if serves_bundled_model(reply):
        on_progress(0.0, BUNDLED_MODEL_STAGE)
    return client


def _start(address: str, token: Optional[str], autostart: AutostartCommand, editor: Editor,
           starter: Starter) -> None:
    try:
        argv = list(autostart())
    except ValueError as exc:  # shlex: unbalanced quotes
        raise editor.error("The autostart command cannot be read (%s). %s Nothing was changed."
                           % (exc, editor.check_autostart)) from None
    try:
        starter(address, argv, timeout=AUTOSTART_TIMEOUT, token=token, log_path=editor.log_path)
    except (BackendUnavailable, OSError, ValueError) as exc:
        raise editor.error("Could not start the backend with %s: %s (log: %s). %s Nothing was changed."
                           % (" ".join(argv), exc, editor.log_path, editor.check_autostart)) from None


def connect(address: str, token: Optional[str], autostart: Optional[AutostartCommand], editor: Editor,
            client_factory: ClientFactory, starter: Starter, on_progress: ProgressCallback) -> Any:
    """A client whose backend answered `hello`, starting the backend first when none answers.

    `autostart` is None when the user configured no command; otherwise it builds the argv, only
    when needed (a malformed command must not break a setup whose backend is already running).
    The starter (ensure_backend) detaches the backend, so it outlives the plugin's process.
    """
    try:
        return _hello(client_factory(address, token=token), editor, on_progress)
    except BackendUnavailable as exc:
        if autostart is None:
            raise editor.error(how_to_start_message(address, str(exc), editor)) from None
    on_progress(0.0, "starting the backend")
    _start(address, token, autostart, editor, starter)
    try:
        return _hello(client_factory(address, token=token), editor, on_progress)
    except BackendUnavailable as exc:
        raise editor.error(how_to_start_message(address, str(exc), editor)) from None


def inpaint(client: Any, request: Any, editor: Editor, on_progress: ProgressCallback,
            cancel_event: Optional[threading.Event] = None) -> Any:
    """`client.inpaint(request)`, with the backend's failures as the editor's error.

    With a `cancel_event` the caller can cancel, so JobCancelled passes through for it to tell a
    cancel from a failure; without one nobody here asked to cancel (the backend shut down), and
    it becomes an error too. The caller closes the client.
    """
    on_progress(0.0, "sending")
    try:
        if cancel_event is None:
            return client.inpaint(request, on_progress=on_progress)
        return client.inpaint(request, on_progress=on_progress, cancel_event=cancel_event)
    except BackendUnavailable as exc:
        raise editor.error("The backend stopped while inpainting (%s). Nothing was changed; restart the "
                           "backend and run Inpaint Selection again." % exc) from None
    except BackendError as exc:
        raise editor.error(("The backend could not inpaint this selection: %s. %s"
                            % (exc.message, editor.hint(exc.code))).rstrip()) from None
    except JobCancelled as exc:
        if cancel_event is not None:
            raise
        raise editor.error("The backend cancelled the job (%s). Nothing was changed." % exc) from None
