"""LaMa Inpaint for Krita: fill the selection with LaMa inpainting from a local backend.

Krita imports this package at startup (see lama_inpaint.desktop); it registers the
"Inpaint Selection" action and the "LaMa Inpaint" docker. The backend is `lama-backend serve`.
"""
from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita

from .docker import DOCKER_ID, LamaInpaintDocker
from .extension import LamaInpaintExtension

_app = Krita.instance()
_app.addExtension(LamaInpaintExtension(_app))
_app.addDockWidgetFactory(DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, LamaInpaintDocker))
