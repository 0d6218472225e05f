"""The network side of one inpaint job: reach (or start) the backend, send, wait, translate errors.

Runs on a worker thread and never touches Krita objects: it gets the plain request fields and
returns the result bytes, or raises PluginError with the message the user should read.
JobCancelled passes through unchanged so the caller can tell a cancel from a failure.
"""
import os
import shlex
import tempfile
import threading
from typing import Any, Callable, Dict, List, Optional

from .client_api import BackendError, BackendUnavailable, InpaintRequest, JobCancelled, LamaClient, ensure_backend
from .document_io import PluginError
from .settings import InpaintSettings

ProgressCallback = Callable[[float, str], None]
ClientFactory = Callable[..., Any]
AUTOSTART_LOG = os.path.join(tempfile.gettempdir(), "lama-backend-krita.log")
AUTOSTART_TIMEOUT = 180.0  # seconds: loading big weights on a slow disk takes a while

_HINTS = {
    "unauthorized": "Check the token in the LaMa Inpaint docker: it must match the backend's --token.",
    "too_large": "Select a smaller area or lower the context margin.",
    "queue_full": "The backend is busy with other jobs; try again in a moment.",
    "out_of_memory": "Select a smaller area or lower the context margin.",
    "unsupported_protocol": "The plugin and the backend come from different versions; update both.",
}


def autostart_argv(command_text: str, address: str, token: str) -> List[str]:
    """The argv that starts the backend from the "autostart command" setting.

    A single word (the path of `lama-backend`) gets `serve --bind ADDRESS [--token TOKEN]`
    appended so it listens where the plugin looks; anything longer is taken as the full command.
    """
    posix = os.name != "nt"
    words = [w.strip('"') if not posix else w for w in shlex.split(command_text.strip(), posix=posix)]
    if len(words) == 1:
        words += ["serve", "--bind", address]
        if token:
            words += ["--token", token]
    return words


def how_to_start_message(address: str, reason: str) -> str:
    return ("No LaMa backend answers at %s (%s).\n\nStart it in a terminal with:\n    lama-backend serve --bind %s\n"
            "or enter the path of lama-backend as the autostart command in the LaMa Inpaint docker "
            "(Settings > Dockers > LaMa Inpaint) so the plugin starts it for you. Nothing was changed."
            % (address, reason, address))


def _connect(settings: InpaintSettings, client_factory: ClientFactory, starter: Callable[..., Any],
             on_progress: ProgressCallback) -> Any:
    """A client whose backend answered `hello`, autostarting the backend when configured."""
    token = settings.token or None
    client = client_factory(settings.address, token=token)
    try:
        client.hello()
        return client
    except BackendUnavailable as exc:
        client.close()
        if not settings.autostart_command.strip():
            raise PluginError(how_to_start_message(settings.address, str(exc))) from None
    except BackendError as exc:
        client.close()
        raise PluginError("The backend refused the connection: %s. %s"
                          % (exc.message, _HINTS.get(exc.code, ""))) from None
    on_progress(0.0, "starting the backend")
    argv = autostart_argv(settings.autostart_command, settings.address, settings.token)
    try:
        starter(settings.address, argv, timeout=AUTOSTART_TIMEOUT, token=token, log_path=AUTOSTART_LOG)
    except (BackendUnavailable, OSError, ValueError) as exc:
        raise PluginError("Could not start the backend with %s: %s. Check the autostart command in the "
                          "LaMa Inpaint docker. Nothing was changed." % (" ".join(argv), exc)) from None
    client = client_factory(settings.address, token=token)
    try:
        client.hello()
    except BackendUnavailable as exc:
        client.close()
        raise PluginError(how_to_start_message(settings.address, str(exc))) from None
    return client


def run_inpaint(request_fields: Dict[str, Any], settings: InpaintSettings, on_progress: ProgressCallback,
                cancel_event: threading.Event, client_factory: Optional[ClientFactory] = None,
                starter: Optional[Callable[..., Any]] = None) -> bytes:
    """Run one job on the backend and return the result pixels (the region, wire format).

    Raises JobCancelled when `cancel_event` was set (the backend is told to drop the job), and
    PluginError with a readable message for everything else that goes wrong.
    """
    client = _connect(settings, client_factory or LamaClient, starter or ensure_backend, on_progress)
    try:
        if cancel_event.is_set():
            raise JobCancelled("cancelled before sending")
        on_progress(0.0, "sending")
        try:
            result = client.inpaint(InpaintRequest(**request_fields), on_progress=on_progress,
                                    cancel_event=cancel_event)
        except BackendUnavailable as exc:
            raise PluginError("The backend stopped while inpainting (%s). Nothing was changed; restart the "
                              "backend and run Inpaint Selection again." % exc) from None
        except BackendError as exc:
            raise PluginError("The backend could not inpaint this selection: %s. %s"
                              % (exc.message, _HINTS.get(exc.code, ""))) from None
        shape = (result.width, result.height, result.dtype, result.layout)
        sent = (request_fields["width"], request_fields["height"], request_fields["dtype"], request_fields["layout"])
        if shape != sent:
            raise PluginError("The backend answered with a %dx%d %s %s image for a %dx%d %s %s request. Nothing "
                              "was changed." % (shape + sent))
        return bytes(result.pixels)
    finally:
        client.close()
