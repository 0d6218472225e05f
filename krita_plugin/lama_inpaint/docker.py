"""The "LaMa Inpaint" docker: settings, a run button, status and progress.

Each edit is written to Krita's settings at once, so the action (which reads the settings when
it starts) always uses what the docker shows.
"""
from typing import Any

from PyQt5.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QLabel, QLineEdit, QProgressBar, QPushButton, QSpinBox,
                             QVBoxLayout, QWidget)

from krita import DockWidget, Krita

from .controller import PROGRESS_STEPS, get_controller
from .settings import INT_RANGES, SOURCES, load_settings, save_settings

DOCKER_ID = "lama_inpaint_docker"
DOCKER_TITLE = "LaMa Inpaint"
SOURCE_LABELS = {"composite": "Visible image", "layer": "Active layer only"}


class LamaInpaintDocker(DockWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(DOCKER_TITLE)
        self._app = Krita.instance()
        settings = load_settings(self._app)
        root = QWidget(self)
        layout = QVBoxLayout(root)
        form = QFormLayout()
        self.address = QLineEdit(settings.address)
        self.address.setToolTip("ZeroMQ address of `lama-backend serve`")
        self.token = QLineEdit(settings.token)
        self.token.setEchoMode(QLineEdit.Password)
        self.token.setToolTip("Only when the backend was started with --token")
        self.autostart = QLineEdit(settings.autostart_command)
        self.autostart.setPlaceholderText("path of lama-backend (optional)")
        self.autostart.setToolTip("Started when no backend answers: the path of lama-backend (the plugin adds "
                                  "'serve --bind ADDRESS'), or a full command line")
        self.margin = self._spin("margin", settings.margin, "Context around the selection that the model sees")
        self.grow = self._spin("grow", settings.grow, "Grow the hole before inpainting (covers halos)")
        self.feather = self._spin("feather", settings.feather, "Blend ramp inside the hole")
        self.seamless = QCheckBox("Seamless edges")
        self.seamless.setChecked(settings.seamless)
        self.seamless.setToolTip("Shift the fill so it meets the pixels around the selection exactly; turn off "
                                 "to get the model's fill as it is (e.g. when the selection is too tight and "
                                 "its edge colours would tint the fill)")
        self.source = QComboBox()
        for key in SOURCES:
            self.source.addItem(SOURCE_LABELS[key], key)
        self.source.setCurrentIndex(SOURCES.index(settings.source))
        form.addRow("Backend", self.address)
        form.addRow("Token", self.token)
        form.addRow("Autostart", self.autostart)
        form.addRow("Context margin", self.margin)
        form.addRow("Grow mask", self.grow)
        form.addRow("Feather", self.feather)
        form.addRow("", self.seamless)
        form.addRow("Source", self.source)
        layout.addLayout(form)
        self.run_button = QPushButton("Inpaint Selection")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        controller = get_controller()
        self.status = QLabel(controller.status)
        self.status.setWordWrap(True)
        layout.addWidget(self.run_button)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.setWidget(root)

        for edit in (self.address, self.token, self.autostart):
            edit.editingFinished.connect(self.save)
        for spin in (self.margin, self.grow, self.feather):
            spin.valueChanged.connect(self.save)
        self.seamless.toggled.connect(self.save)
        self.source.currentIndexChanged.connect(self.save)
        self.run_button.clicked.connect(controller.run_on_active_document)
        self.cancel_button.clicked.connect(controller.cancel)
        controller.status_changed.connect(self.status.setText)
        controller.progress_changed.connect(self.progress.setValue)
        controller.running_changed.connect(self._on_running)

    def _spin(self, name: str, value: int, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(*INT_RANGES[name])
        spin.setSuffix(" px")
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    def save(self) -> None:
        """Store what the docker shows (called on every edit)."""
        settings = load_settings(self._app)
        settings.address = self.address.text().strip() or settings.address
        settings.token = self.token.text()
        settings.autostart_command = self.autostart.text().strip()
        settings.margin = self.margin.value()
        settings.grow = self.grow.value()
        settings.feather = self.feather.value()
        settings.seamless = self.seamless.isChecked()
        settings.source = self.source.currentData()
        save_settings(self._app, settings)

    def _on_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def canvasChanged(self, canvas: Any) -> None:
        """Required by Krita's DockWidget; the docker does not depend on the canvas."""
