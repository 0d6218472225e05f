"""Test driver loaded by full Krita (tests/test_krita_real.py): checks the LaMa plugin, then quits.

Enabled only in the temporary test profile. When the first window exists it checks the action
(menu place, shortcut, enabled state) and the docker, configures the plugin through the docker,
runs the action on a real document against the backend named in $LAMA_KRITA_GUI_CONFIG, takes a
screenshot, undoes once, writes its findings as JSON and quits Krita.

Each step is a QTimer callback that returns to Krita's main event loop, as user actions do:
nested event loops delay Krita's Layers docker updates, which would test the harness, not Krita.
"""
import json
import os
import traceback

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QAbstractItemView, QApplication, QDockWidget

from krita import Extension, Krita

from . import scene

ACTION_ID = "lama_inpaint_selection"


def menu_path_of(menu_bar, text):
    """The menu titles leading to an entry called `text`, e.g. ["Tools", "Scripts"]."""
    def walk(menu, trail):
        for action in menu.actions():
            title = action.text().replace("&", "")
            if action.menu() is not None:
                found = walk(action.menu(), trail + [title])
                if found:
                    return found
            elif title == text:
                return trail
        return None
    return walk(menu_bar, [])


def layer_docker_rows(qwindow):
    """What Krita's own Layers docker lists (its node view's top-level rows), top first."""
    for dock in qwindow.findChildren(QDockWidget):
        if dock.objectName() == "KisLayerBox":
            for view in dock.findChildren(QAbstractItemView):
                model = view.model()
                if view.metaObject().className() == "NodeView" and model is not None:
                    return [model.index(row, 0).data() for row in range(model.rowCount())]
    return None


class GuiDriver(Extension):
    def __init__(self, parent):
        super().__init__(parent)
        self.started = False
        self.finished = False
        self.out = {"errors": []}

    def setup(self):
        Krita.instance().notifier().windowCreated.connect(self.window_created)

    def createActions(self, window):
        pass

    def window_created(self):
        if not self.started:
            self.started = True
            with open(os.environ["LAMA_KRITA_GUI_CONFIG"]) as handle:
                self.cfg = json.load(handle)
            self.later(1000, self.check_ui)

    # -- step machinery -----------------------------------------------------------------------
    def later(self, ms, step, *args):
        def run():
            if self.finished:
                return
            try:
                step(*args)
            except Exception:
                self.out["errors"].append(traceback.format_exc())
                self.finish()
        QTimer.singleShot(ms, run)

    def finish(self):
        if self.finished:
            return
        self.finished = True
        with open(self.cfg["out"], "w") as handle:
            json.dump(self.out, handle, indent=1)
        app = Krita.instance()
        for doc in app.documents():
            doc.setModified(False)
        app.action("file_quit").trigger()

    # -- steps --------------------------------------------------------------------------------
    def check_ui(self):
        from lama_inpaint.settings import load_settings

        cfg, app, out = self.cfg, Krita.instance(), self.out
        self.window = app.activeWindow()
        self.qwindow = self.window.qwindow()
        self.qwindow.setGeometry(0, 0, 1600, 1000)  # Xvfb has no window manager to maximise it
        action = self.action = app.action(ACTION_ID)
        out["action_exists"] = action is not None
        if action is None:
            return self.finish()
        out["action_text"] = action.text()
        out["shortcut"] = action.shortcut().toString()
        out["shortcut_clashes"] = [a.objectName() for a in app.actions()
                                   if a is not action and not a.shortcut().isEmpty() and a.shortcut() == action.shortcut()]
        out["menu_path"] = menu_path_of(self.qwindow.menuBar(), action.text())
        dockers = [d for d in self.qwindow.findChildren(QDockWidget) if d.windowTitle() == "LaMa Inpaint"]
        out["dockers"] = len(dockers)
        if not dockers:
            return self.finish()
        self.docker = docker = dockers[0]
        docker.show()
        docker.raise_()
        # Configure through the docker's own fields, as a user would; the action reads the saved settings.
        docker.address.setText(cfg["address"])
        docker.address.editingFinished.emit()
        docker.margin.setValue(cfg["margin"])
        out["saved_settings"] = load_settings(app).as_strings()
        self.doc, self.background = scene.make_document(cfg["width"], cfg["height"], "U8", post=cfg["post"])
        self.window.addView(self.doc)
        self.later(800, self.select)

    def select(self):
        self.out["enabled_without_selection"] = self.action.isEnabled()
        scene.select_post(self.doc, *self.cfg["post"])
        self.later(800, self.activate)

    def activate(self):
        self.doc.setActiveNode(self.background)  # the view activated the top layer when it opened
        self.later(800, self.run_action)

    def run_action(self):
        from lama_inpaint.controller import get_controller

        doc, out = self.doc, self.out
        out["enabled_with_selection"] = self.action.isEnabled()
        out["active_before"] = doc.activeNode().name() if doc.activeNode() else None
        self.before = [(n.name(), bytes(n.pixelData(0, 0, doc.width(), doc.height()))) for n in scene.paint_layers(doc)]
        self.controller = get_controller()
        self.controller.finished.connect(self.job_finished)
        self.later(int(self.cfg["job_timeout"] * 1000), self.job_finished, "timeout")
        self.action.trigger()  # what the menu entry and the shortcut do
        out["running_after_trigger"] = self.controller.is_running()

    def job_finished(self, kind):
        if "outcome" in self.out:
            return
        self.out["outcome"] = kind
        self.out["status"] = self.controller.status
        if kind != "done":
            return self.finish()
        self.later(1500, self.after_run)  # let the canvas and the dockers repaint

    def after_run(self):
        doc, out = self.doc, self.out
        out["names_after_run"] = [n.name() for n in scene.paint_layers(doc)]
        out["layer_docker_rows"] = layer_docker_rows(self.qwindow)
        layer = self.controller.last_layer
        bounds = layer.bounds()
        out["layer_bounds"] = [bounds.x(), bounds.y(), bounds.width(), bounds.height()]
        out["docker_status"] = self.docker.status.text() if hasattr(self.docker, "status") else None
        QApplication.primaryScreen().grabWindow(0).save(self.cfg["screenshot"])
        Krita.instance().action("edit_undo").trigger()
        self.later(1500, self.after_undo)

    def after_undo(self):
        doc, out = self.doc, self.out
        out["names_after_undo"] = [n.name() for n in scene.paint_layers(doc)]
        out["layer_docker_rows_after_undo"] = layer_docker_rows(self.qwindow)
        out["others_unchanged"] = self.before == [(n.name(), bytes(n.pixelData(0, 0, doc.width(), doc.height())))
                                                  for n in scene.paint_layers(doc)]
        self.later(500, self.run_layer_source)

    def run_layer_source(self):
        """Second run with Source = "Active layer only": the model must see the background alone."""
        from lama_inpaint.document_io import prepare_inpaint
        from lama_inpaint.settings import load_settings

        doc, out = self.doc, self.out
        self.docker.source.setCurrentIndex(self.docker.source.findData("layer"))
        settings = load_settings(Krita.instance())
        out["layer_source_setting"] = settings.source
        self.snapshot = snapshot = prepare_inpaint(doc, settings)
        self.snapshot_fields = snapshot.request_fields(settings)
        area = snapshot.region
        out["layer_source_reads_active_layer"] = snapshot.pixels == bytes(
            self.background.pixelData(area.x, area.y, area.width, area.height))
        out["layer_source_differs_from_composite"] = snapshot.pixels != bytes(
            doc.pixelData(area.x, area.y, area.width, area.height))
        self.controller.finished.disconnect(self.job_finished)
        self.controller.finished.connect(self.layer_source_finished)
        self.action.trigger()

    def layer_source_finished(self, kind):
        from lama_inpaint.document_io import LAYER_NAME
        from lama_inpaint.lama_client import InpaintRequest, LamaClient, region

        doc, out, snapshot = self.doc, self.out, self.snapshot
        out["layer_source_outcome"] = kind
        out["names_after_layer_source"] = [n.name() for n in scene.paint_layers(doc)]
        client = LamaClient(self.cfg["address"], timeout=10.0)
        try:
            expected = client.inpaint(InpaintRequest(**self.snapshot_fields)).pixels
        finally:
            client.close()
        layer = [n for n in scene.paint_layers(doc) if n.name() == LAYER_NAME][0]
        area = snapshot.region
        out["layer_source_pixels_equal_backend"] = bytes(layer.pixelData(area.x, area.y, area.width, area.height)) == \
            region.build_layer_pixels(expected, area, snapshot.fmt)
        self.finish()


Krita.instance().addExtension(GuiDriver(Krita.instance()))
