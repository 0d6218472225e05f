"""One "Inpaint Selection (LaMa)" run: selection -> region -> backend -> new layer.

The steps are ordered so that nothing in the image changes until the backend's result is
complete and checked: the result layer is built first and only then inserted, in one undo group.
Every failure becomes a PluginError whose message tells the user what happened and what to do.
"""
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

import lama_gimp_io as gimp_io
from lama_gimp_client import DEFAULT_ADDRESS, InpaintRequest, LamaClient, ensure_backend, region, session

Rect = region.Rect
ProgressCallback = Callable[[float, str], None]
SOURCES = ("layer", "visible")
LAYER_NAME = "Inpainted (LaMa)"
AUTOSTART_LOG = os.path.join(tempfile.gettempdir(), "lama-backend-gimp.log")


class PluginError(Exception):
    """A failure the user can act on; the message is shown as is."""


GIMP = session.Editor(
    error=PluginError, plugin_noun="plug-in",
    token_hint="Set LAMA_BACKEND_TOKEN to the backend's --token.",
    autostart_hint="set LAMA_BACKEND_COMMAND to the path of lama-backend so the plug-in starts it.",
    check_autostart="Check LAMA_BACKEND_COMMAND.",
    log_path=AUTOSTART_LOG)


@dataclass
class InpaintSettings:
    """The procedure's arguments (see lama_inpaint.py for their ranges)."""

    margin: int = 128   # context pixels around the selection sent to the model
    grow: int = 0       # dilate the hole by this many pixels
    feather: int = 0    # blend ramp width inside the hole
    seamless: bool = True  # shift the fill to meet the pixels around the hole (no seam)
    source: str = "layer"  # "layer": the drawable's own pixels; "visible": the composite

    def check(self) -> None:
        if self.source not in SOURCES:
            raise PluginError("Unknown source %r: use one of %s." % (self.source, ", ".join(SOURCES)))
        for name in ("margin", "grow", "feather"):
            if getattr(self, name) < 0:
                raise PluginError("%s must be 0 or more, got %d." % (name.capitalize(), getattr(self, name)))


@dataclass
class BackendSettings:
    """Where the backend listens and how to start it, from the environment.

    LAMA_BACKEND_ADDRESS (default tcp://127.0.0.1:57311), LAMA_BACKEND_TOKEN, and
    LAMA_BACKEND_COMMAND: the command that starts a backend when none answers ("lama-backend"
    by default when it is on PATH; "none" turns autostart off).
    """

    address: str = DEFAULT_ADDRESS
    token: Optional[str] = None
    autostart: Optional[List[str]] = None

    @classmethod
    def from_environment(cls, environ: Optional[dict] = None,
                         which: Optional[Callable[[str], Optional[str]]] = None) -> "BackendSettings":
        env = os.environ if environ is None else environ
        which = which or shutil.which
        address = env.get("LAMA_BACKEND_ADDRESS", "").strip() or DEFAULT_ADDRESS
        token = env.get("LAMA_BACKEND_TOKEN", "").strip() or None
        command = env.get("LAMA_BACKEND_COMMAND", "").strip()
        if command.lower() == "none":
            argv = None
        elif command:
            argv = session.autostart_argv(command, address, token)
        else:
            found = which("lama-backend")
            argv = session.autostart_argv(found, address, token) if found else None
        return cls(address, token, argv)


@dataclass
class Prepared:
    """The region to send: where it is on the canvas, its pixels and selection mask."""

    rect: Rect
    fmt: Any          # region.PixelFormat of the wire pixels
    babl_format: str  # how the pixels were read and how the result is written
    pixels: bytes
    mask: bytes
    soft: bool        # the selection has partial values: the backend blends by them


def prepare(image: Any, drawable: Any, settings: InpaintSettings) -> Prepared:
    """Read the selection and the region around it (selection bounds + margin + grow, clamped)."""
    settings.check()
    selected = gimp_io.selection_bounds(image)
    if selected is None:
        raise PluginError("Nothing is selected. Select the area to inpaint first (for example with "
                          "the Free Select tool), then run Inpaint Selection again.")
    canvas = gimp_io.drawable_rect(drawable) if settings.source == "layer" else gimp_io.image_rect(image)
    hole = selected.intersect(canvas)
    if hole.is_empty():
        raise PluginError("The selection lies outside the layer \"%s\". Select an area on the layer or "
                          "choose the visible image as the source." % drawable.get_name())
    rect = region.expand_rect(hole, settings.margin + settings.grow, canvas)
    mask = gimp_io.read_mask(image, rect)
    if region.mask_bounds(mask, rect.width, rect.height) is None:
        raise PluginError("The selection is fully transparent inside the layer; nothing to inpaint.")
    fmt, babl_format = gimp_io.pixel_format(image)
    if settings.source == "layer":
        pixels = gimp_io.read_drawable(drawable, rect, babl_format)
    else:
        pixels = gimp_io.read_visible(image, rect, babl_format)
    return Prepared(rect, fmt, babl_format, pixels, mask, region.mask_has_soft_values(mask))


def connect(backend: BackendSettings, client_factory: Callable[..., Any], starter: Callable[..., Any],
            on_progress: ProgressCallback) -> Any:
    """A client whose backend answered `hello`, starting a detached backend when configured.

    The started backend gets its own session (ensure_backend), so GIMP killing this plug-in's
    process group on Cancel leaves it running for the next call.
    """
    argv = backend.autostart
    return session.connect(backend.address, backend.token, (lambda: argv) if argv else None, GIMP, client_factory,
                           starter, on_progress)


def call_backend(prepared: Prepared, settings: InpaintSettings, backend: BackendSettings,
                 on_progress: ProgressCallback, client_factory: Optional[Callable[..., Any]] = None,
                 starter: Optional[Callable[..., Any]] = None) -> bytes:
    """Send the region and return the layer pixels (alpha 0 outside the hole), size-checked."""
    client = connect(backend, client_factory or LamaClient, starter or ensure_backend, on_progress)
    rect, fmt = prepared.rect, prepared.fmt
    request = InpaintRequest(width=rect.width, height=rect.height, channels=fmt.channels, dtype=fmt.dtype,
                             layout=fmt.layout, pixels=prepared.pixels, mask=prepared.mask, grow=settings.grow,
                             feather=settings.feather, margin=settings.margin, soft_mask=prepared.soft,
                             output="layer", seamless=settings.seamless)
    try:
        result = session.inpaint(client, request, GIMP, on_progress)
    finally:
        client.close()
    try:
        return region.build_layer_pixels(bytes(result.pixels), rect, fmt)
    except region.RegionError as exc:
        raise PluginError("The backend sent a result of the wrong size (%s). Nothing was changed." % exc) from None


def inpaint_selection(image: Any, drawable: Any, settings: InpaintSettings, backend: BackendSettings,
                      on_progress: ProgressCallback, client_factory: Optional[Callable[..., Any]] = None,
                      starter: Optional[Callable[..., Any]] = None) -> Any:
    """Run the whole job and return the inserted layer; the image is untouched on any error."""
    if not gimp_io.is_layer(drawable):
        raise PluginError("Select a layer to inpaint (a channel or layer mask cannot hold the result).")
    prepared = prepare(image, drawable, settings)
    pixels = call_backend(prepared, settings, backend, on_progress, client_factory, starter)
    layer = gimp_io.new_result_layer(image, prepared.rect, prepared.babl_format, pixels, LAYER_NAME)
    try:
        gimp_io.insert_above(image, drawable, layer)
    except Exception:
        layer.delete()
        raise
    return layer
