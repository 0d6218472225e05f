"""The "Inpaint Selection" action (Tools > Scripts; default shortcut in lama_inpaint.action)."""
from typing import Any

from krita import Extension

from .controller import get_controller

ACTION_ID = "lama_inpaint_selection"  # must match <Action name=...> in lama_inpaint.action
ACTION_TEXT = "Inpaint Selection"


class LamaInpaintExtension(Extension):
    def __init__(self, parent: Any) -> None:
        super().__init__(parent)

    def setup(self) -> None:
        """Nothing to set up before windows exist; the controller is created on first use."""

    def createActions(self, window: Any) -> None:
        action = window.createAction(ACTION_ID, ACTION_TEXT, "tools/scripts")
        action.triggered.connect(self.run)

    def run(self) -> None:
        get_controller().run_on_active_document()
