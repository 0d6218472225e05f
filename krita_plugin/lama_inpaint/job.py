"""The network side of one inpaint job: reach (or start) the backend, send, wait, translate errors.

Runs on a worker thread and never touches Krita objects: it gets the plain request fields and
returns the result bytes, or raises PluginError with the message the user should read.
JobCancelled passes through unchanged so the caller can tell a cancel from a failure.
"""
import os
import tempfile
import threading
from typing import Any, Callable, Dict, Optional

from .client_api import InpaintRequest, JobCancelled, LamaClient, ensure_backend, session
from .document_io import PluginError
from .settings import InpaintSettings

ProgressCallback = Callable[[float, str], None]
ClientFactory = Callable[..., Any]
AUTOSTART_LOG = os.path.join(tempfile.gettempdir(), "lama-backend-krita.log")
KRITA = session.Editor(
    error=PluginError, plugin_noun="plugin",
    token_hint="Check the token in the LaMa Inpaint docker: it must match the backend's --token.",
    autostart_hint="enter the path of lama-backend as the autostart command in the LaMa Inpaint docker "
                   "(Settings > Dockers > LaMa Inpaint) so the plugin starts it for you.",
    check_autostart="Check the autostart command in the LaMa Inpaint docker.",
    log_path=AUTOSTART_LOG)


def _connect(settings: InpaintSettings, client_factory: ClientFactory, starter: Callable[..., Any],
             on_progress: ProgressCallback) -> Any:
    """A client whose backend answered `hello`, autostarting the backend when configured."""
    command = settings.autostart_command
    autostart = (lambda: session.autostart_argv(command, settings.address, settings.token)) if command.strip() else None
    return session.connect(settings.address, settings.token or None, autostart, KRITA, client_factory, starter,
                           on_progress)


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
        result = session.inpaint(client, InpaintRequest(**request_fields), KRITA, on_progress, cancel_event)
        shape = (result.width, result.height, result.dtype, result.layout)
        sent = (request_fields["width"], request_fields["height"], request_fields["dtype"], request_fields["layout"])
        if shape != sent:
            raise PluginError("The backend answered with a %dx%d %s %s image for a %dx%d %s %s request. Nothing "
                              "was changed." % (shape + sent))
        return bytes(result.pixels)
    finally:
        client.close()
