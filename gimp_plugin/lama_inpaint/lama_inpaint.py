#!/usr/bin/env python3
"""GIMP 3 plug-in: Filters > Enhance > Inpaint Selection (LaMa).

Fills the selection with LaMa's prediction, computed by a local `lama-backend serve`, and puts it
on a new layer directly above the selected layer (one undo step; no other layer changes). The
backend is found at $LAMA_BACKEND_ADDRESS (default tcp://127.0.0.1:57311) and started detached
when none answers (see lama_gimp_job.BackendSettings).

Install: unpack the folder made by `lama-backend package-plugin gimp` into the plug-ins folder
of your GIMP 3 profile (~/.config/GIMP/3.0/plug-ins/ on Linux) and restart GIMP.
"""
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling modules and lama_client

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
from gi.repository import GLib, GObject, Gimp  # noqa: E402

from lama_gimp_client import session  # noqa: E402
from lama_gimp_job import (LAYER_NAME, BackendSettings, InpaintSettings, PluginError,  # noqa: E402
                           inpaint_selection)

PROCEDURE_NAME = "plug-in-lama-inpaint-selection"
MENU_LABEL = "Inpaint Selection (LaMa)"
# name, label, help, min, max, default (the ranges the Krita plugin uses too)
INT_ARGUMENTS = (
    ("margin", "Context _margin", "Pixels of context around the selection sent to the model", 0, 2048, 128),
    ("grow", "_Grow selection", "Grow the hole by this many pixels before inpainting", 0, 256, 0),
    ("feather", "_Feather", "Width in pixels of the blend ramp inside the hole", 0, 256, 0),
)
SOURCE_CHOICES = (("layer", "Selected layer"), ("visible", "Visible image"))
SEAMLESS_ARGUMENT = ("seamless", "Seamless _edges",
                     "Shift the fill so it meets the pixels around the selection exactly (off: the model's fill "
                     "as it is)", True)


def settings_from_config(config: "Gimp.ProcedureConfig") -> InpaintSettings:
    """The procedure's arguments as plain values."""
    return InpaintSettings(margin=config.get_property("margin"), grow=config.get_property("grow"),
                           feather=config.get_property("feather"), source=config.get_property("source"),
                           seamless=bool(config.get_property("seamless")))


def show_dialog(procedure: "Gimp.Procedure", config: "Gimp.ProcedureConfig") -> bool:
    """GIMP's generated dialog for the arguments; GIMP stores the values it returns for next time."""
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi

    GimpUi.init(PROCEDURE_NAME)
    dialog = GimpUi.ProcedureDialog.new(procedure, config, MENU_LABEL)
    dialog.fill(None)
    try:
        return bool(dialog.run())
    finally:
        dialog.destroy()


class Progress:
    """Forwards the backend's progress to GIMP's progress bar, the stage text only when it changes."""

    def __init__(self) -> None:
        self.stage = None
        self.model_notice = ""  # session.BUNDLED_MODEL_STAGE when the backend serves the bundled model

    def __call__(self, fraction: float, stage: str) -> None:
        if stage == session.BUNDLED_MODEL_STAGE:
            self.model_notice = stage
        if stage and stage != self.stage:
            self.stage = stage
            Gimp.progress_set_text("%s: %s" % (LAYER_NAME, stage))
        Gimp.progress_update(min(max(float(fraction), 0.0), 1.0))


def run(procedure, run_mode, image, drawables, config, _data):
    """The procedure body: every failure returns EXECUTION_ERROR with a readable message."""
    if len(drawables) != 1:
        return _error(procedure, "Select exactly one layer to inpaint (%d are selected)." % len(drawables))
    if run_mode == Gimp.RunMode.INTERACTIVE and not show_dialog(procedure, config):
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    Gimp.progress_init("Inpainting the selection with LaMa")
    progress = Progress()
    try:
        inpaint_selection(image, drawables[0], settings_from_config(config), BackendSettings.from_environment(),
                          progress)
    except PluginError as exc:
        return _error(procedure, str(exc))
    except Exception as exc:  # a bug: keep GIMP alive, show the reason, log the traceback
        traceback.print_exc()
        return _error(procedure, "Inpaint Selection failed unexpectedly: %s: %s" % (type(exc).__name__, exc))
    finally:
        Gimp.progress_end()
    Gimp.displays_flush()
    if progress.model_notice and run_mode == Gimp.RunMode.INTERACTIVE:
        Gimp.message("%s: done, %s." % (MENU_LABEL, progress.model_notice))  # the progress text is gone by now
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def _error(procedure, message: str):
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))


class LamaInpaint(Gimp.PlugIn):
    """Registers the one procedure of this plug-in."""

    def do_query_procedures(self):
        return [PROCEDURE_NAME]

    def do_set_i18n(self, _name):
        return False

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label(MENU_LABEL)
        procedure.add_menu_path("<Image>/Filters/Enhance")
        procedure.set_documentation(
            "Fill the selection with LaMa inpainting on a new layer",
            "Sends the selection and the pixels around it to a local lama-backend and inserts the "
            "result as a new layer directly above the selected layer. Soft selections blend.",
            name)
        procedure.set_attribution("lama-inpaint-bridge contributors", "Apache-2.0", "2026")
        for arg_name, label, blurb, low, high, default in INT_ARGUMENTS:
            procedure.add_int_argument(arg_name, label, blurb, low, high, default, GObject.ParamFlags.READWRITE)
        procedure.add_boolean_argument(*SEAMLESS_ARGUMENT, GObject.ParamFlags.READWRITE)
        choice = Gimp.Choice.new()
        for index, (choice_id, label) in enumerate(SOURCE_CHOICES):
            choice.add(choice_id, index, label, "")
        procedure.add_choice_argument("source", "So_urce", "Inpaint from the selected layer or the visible image",
                                      choice, SOURCE_CHOICES[0][0], GObject.ParamFlags.READWRITE)
        return procedure


if __name__ == "__main__":
    Gimp.main(LamaInpaint.__gtype__, sys.argv)
