"""Runs the action without freezing Krita: snapshot on the GUI thread, network on a QThread.

The controller takes the snapshot (`prepare_inpaint`), hands the plain request to an
`InpaintWorker` thread, shows a cancellable progress dialog, reports status and progress to the
docker through signals, and applies the result back on the GUI thread. Every Krita call happens
on the GUI thread; the worker only talks to the backend.
"""
import threading
import traceback
from typing import Any, Callable, Optional

from PyQt5.QtCore import QObject, Qt, QThread, pyqtSignal, pyqtSlot
from PyQt5.QtWidgets import QMessageBox, QProgressDialog

from .client_api import JobCancelled, session
from .document_io import PluginError, PreparedInpaint, apply_result, layer_pixels, prepare_inpaint
from .job import run_inpaint
from .settings import InpaintSettings, load_settings

TITLE = "Inpaint Selection"
PROGRESS_STEPS = 1000


class InpaintWorker(QThread):
    """One backend job on its own thread; reports back only through signals."""

    progressed = pyqtSignal(float, str)
    succeeded = pyqtSignal(object)  # the new layer's bytes
    failed = pyqtSignal(str)
    cancelled = pyqtSignal()

    def __init__(self, job: PreparedInpaint, settings: InpaintSettings, cancel_event: threading.Event,
                 client_factory: Optional[Callable[..., Any]] = None,
                 starter: Optional[Callable[..., Any]] = None) -> None:
        super().__init__()
        self._job = job  # only its plain bytes are used here, never its Krita objects
        self._settings = settings
        self._cancel_event = cancel_event
        self._client_factory = client_factory
        self._starter = starter

    def run(self) -> None:
        try:
            fields = self._job.request_fields(self._settings)
            result = run_inpaint(fields, self._settings, self.progressed.emit, self._cancel_event,
                                 self._client_factory, self._starter)
            pixels = layer_pixels(self._job, result)
        except JobCancelled:
            self.cancelled.emit()
        except PluginError as exc:
            self.failed.emit(str(exc))
        except Exception:  # a bug: say so instead of dying silently on a worker thread
            self.failed.emit("Inpaint Selection failed unexpectedly; nothing was changed.\n\n" + traceback.format_exc())
        else:
            self.succeeded.emit(pixels)


class InpaintController(QObject):
    """Owns at most one running job; the action and the docker both go through it."""

    status_changed = pyqtSignal(str)
    progress_changed = pyqtSignal(int)   # 0..PROGRESS_STEPS
    running_changed = pyqtSignal(bool)
    finished = pyqtSignal(str)           # "done", "failed" or "cancelled"

    def __init__(self, app: Any, client_factory: Optional[Callable[..., Any]] = None,
                 starter: Optional[Callable[..., Any]] = None, notify: Optional[Callable[[str], None]] = None,
                 show_dialog: bool = True) -> None:
        super().__init__()
        self._app = app
        self._client_factory = client_factory
        self._starter = starter
        self.notify = notify or self._message_box
        self._show_dialog = show_dialog
        self._job: Optional[PreparedInpaint] = None
        self._worker: Optional[InpaintWorker] = None
        self._cancel_event = threading.Event()
        self._dialog: Optional[QProgressDialog] = None
        self.last_layer: Any = None
        self.status = "Ready"
        self._model_notice = ""  # session.BUNDLED_MODEL_STAGE when the backend serves the bundled model

    # -- state -------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self._worker is not None

    def _set_status(self, text: str) -> None:
        self.status = text
        self.status_changed.emit(text)

    def _parent_widget(self) -> Any:
        window = self._app.activeWindow()
        return window.qwindow() if window is not None else None

    def _message_box(self, text: str) -> None:
        QMessageBox.warning(self._parent_widget(), TITLE, text)

    # -- starting ----------------------------------------------------------------------------
    def run_on_active_document(self) -> bool:
        """The action's slot: inpaint the active document's selection."""
        return self.start(self._app.activeDocument())

    def start(self, doc: Any) -> bool:
        """Snapshot `doc` and start the job; False (after telling the user why) when it cannot run."""
        if self.is_running():
            self.notify("An inpaint job is still running; wait for it or cancel it first.")
            return False
        settings = load_settings(self._app)
        try:
            self._job = prepare_inpaint(doc, settings)
        except PluginError as exc:
            self._set_status("Not started: " + str(exc).split("\n")[0])
            self.notify(str(exc))
            return False
        self._cancel_event = threading.Event()
        self._model_notice = ""
        worker = InpaintWorker(self._job, settings, self._cancel_event,
                               self._client_factory, self._starter)
        worker.progressed.connect(self._on_progress)
        worker.succeeded.connect(self._on_succeeded)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._worker = worker
        if self._show_dialog:
            self._open_dialog()
        area = self._job.region
        self._set_status("Inpainting %dx%d px at (%d, %d)" % (area.width, area.height, area.x, area.y))
        self.progress_changed.emit(0)
        self.running_changed.emit(True)
        worker.start()
        return True

    def _open_dialog(self) -> None:
        dialog = QProgressDialog("Inpainting the selection...", "Cancel", 0, PROGRESS_STEPS, self._parent_widget())
        dialog.setWindowTitle(TITLE)
        dialog.setWindowModality(Qt.NonModal)  # Krita stays usable; the result goes to the snapshot
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(self.cancel)
        dialog.setValue(0)
        dialog.show()
        self._dialog = dialog

    def cancel(self) -> None:
        """Ask the backend to drop the job; the worker reports `cancelled` when it has."""
        if self.is_running() and not self._cancel_event.is_set():
            self._cancel_event.set()
            self._set_status("Cancelling...")

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Krita is quitting: cancel the job and give the worker a moment to end (a QThread that is
        still running when Qt tears down aborts the whole process)."""
        worker = self._worker
        if worker is not None:
            self._cancel_event.set()
            worker.wait(wait_ms)

    # -- worker signals (queued onto the GUI thread) -------------------------------------------
    @pyqtSlot(float, str)
    def _on_progress(self, fraction: float, stage: str) -> None:
        if stage == session.BUNDLED_MODEL_STAGE:
            self._model_notice = stage  # kept for the final status, where it stays visible
        value = int(max(0.0, min(1.0, fraction)) * PROGRESS_STEPS)
        if self._dialog is not None:
            self._dialog.setLabelText("Inpainting the selection: %s" % stage if stage else "Inpainting the selection...")
            self._dialog.setValue(value)
        if not self._cancel_event.is_set():
            self._set_status("Inpainting: %s %d%%" % (stage, value * 100 // PROGRESS_STEPS))
        self.progress_changed.emit(value)

    @pyqtSlot(object)
    def _on_succeeded(self, pixels: bytes) -> None:
        job = self._job
        self._finish()
        try:
            self.last_layer = apply_result(self._app, job, pixels)
        except PluginError as exc:
            self._report_failure(str(exc))
            return
        except Exception:
            self._report_failure("Adding the result layer failed unexpectedly:\n\n" + traceback.format_exc())
            return
        self.progress_changed.emit(PROGRESS_STEPS)
        notice = " (%s)" % self._model_notice if self._model_notice else ""
        self._set_status("Done: added layer \"%s\"%s" % (self.last_layer.name(), notice))
        self.finished.emit("done")

    @pyqtSlot(str)
    def _on_failed(self, message: str) -> None:
        self._finish()
        self._report_failure(message)

    @pyqtSlot()
    def _on_cancelled(self) -> None:
        self._finish()
        self._set_status("Cancelled; nothing was changed")
        self.finished.emit("cancelled")

    def _report_failure(self, message: str) -> None:
        self._set_status("Failed: " + message.split("\n")[0])
        self.progress_changed.emit(0)
        self.notify(message)
        self.finished.emit("failed")

    def _finish(self) -> None:
        """Forget the job and the worker (its run() has returned once it emitted)."""
        worker, self._worker, self._job = self._worker, None, None
        if worker is not None:
            worker.wait()
        if self._dialog is not None:
            self._dialog.canceled.disconnect(self.cancel)  # closing a QProgressDialog emits canceled
            self._dialog.close()
            self._dialog.deleteLater()
            self._dialog = None
        self.running_changed.emit(False)


_controller: Optional[InpaintController] = None


def get_controller() -> InpaintController:
    """The plugin's one controller, created on first use from `Krita.instance()`."""
    global _controller
    if _controller is None:
        from krita import Krita
        from PyQt5.QtWidgets import QApplication

        _controller = InpaintController(Krita.instance())
        QApplication.instance().aboutToQuit.connect(_controller.shutdown)
    return _controller
