"""Reading the inpaint input out of a Krita document and adding the result as a new layer.

`prepare_inpaint` and `apply_result` touch Krita objects, so they run on Krita's GUI thread and
never block on the network. The conversions in between (`PreparedInpaint.request_fields`,
`layer_pixels`) work on plain bytes and run on the worker thread, so large or half-float regions
do not stall the GUI either.
"""
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from . import formats
from .client_api import region
from .settings import InpaintSettings

LAYER_NAME = "Inpaint Selection"  # the action's name, so the layer says where it came from
_MASK_NODE_TYPES = ("selectionmask", "transparencymask", "filtermask", "transformmask",
                    "colorizemask")


class PluginError(Exception):
    """Something the user should be told in a message box; nothing has been changed."""


@dataclass
class PreparedInpaint:
    """A snapshot of everything one job needs, taken on the GUI thread when the action runs."""

    document: Any
    anchor: Any              # the layer the result goes above (None: top of the stack)
    region: region.Rect      # canvas rectangle sent to the backend: selection bounds + margin
    selection_bounds: region.Rect
    fmt: region.PixelFormat  # the document's memory layout
    pixels: bytes            # region pixels as Krita stores them (the document's format)
    mask: bytes              # region selection, one byte per pixel, 0..255
    canvas: Tuple[int, int, str, str]  # width, height, colour model, depth: checked before applying

    def request_fields(self, settings: InpaintSettings) -> Dict[str, Any]:
        """Keyword arguments of the protocol's InpaintRequest for this snapshot (no Krita calls:
        safe on the worker thread, where half floats are widened)."""
        wire = self.fmt.wire_format()
        return dict(width=self.region.width, height=self.region.height, channels=wire.channels,
                    dtype=wire.dtype, layout=wire.layout, pixels=region.to_wire(self.pixels, self.fmt), mask=self.mask,
                    grow=settings.grow, feather=settings.feather, margin=settings.margin,
                    strategy="crop", soft_mask=True, output="layer", seamless=settings.seamless)


def _canvas_signature(doc: Any) -> Tuple[int, int, str, str]:
    return (doc.width(), doc.height(), doc.colorModel(), doc.colorDepth())


def _anchor_layer(node: Any) -> Any:
    """The layer a new layer can be placed above: masks are children of layers, so use their layer."""
    while node is not None and node.type() in _MASK_NODE_TYPES:
        node = node.parentNode()
    return node


def _selection_bounds(selection: Any, canvas: region.Rect) -> Optional[region.Rect]:
    """Tight bounds of the selection's non-zero pixels inside the canvas, or None when empty."""
    outer = region.Rect(selection.x(), selection.y(), selection.width(), selection.height()).intersect(canvas)
    if outer.is_empty():
        return None
    mask = bytes(selection.pixelData(outer.x, outer.y, outer.width, outer.height))
    tight = region.mask_bounds(mask, outer.width, outer.height)
    if tight is None:
        return None
    return region.Rect(outer.x + tight.x, outer.y + tight.y, tight.width, tight.height)


def prepare_inpaint(doc: Any, settings: InpaintSettings) -> PreparedInpaint:
    """Check the document and cut out the region, selection mask and pixels to send.

    Raises PluginError (with the message to show) for no document, no or empty selection,
    unsupported colour spaces, or a source layer whose colour space differs from the image's.
    """
    if doc is None:
        raise PluginError("Open an image and select the area to inpaint first.")
    try:
        fmt = formats.pixel_format(doc.colorModel(), doc.colorDepth())
    except formats.UnsupportedColorSpace as exc:
        raise PluginError(str(exc)) from None
    selection = doc.selection()
    if selection is None:
        raise PluginError("Select the area to inpaint first (any selection tool; soft edges are respected).")
    canvas = region.Rect(0, 0, doc.width(), doc.height())
    bounds = _selection_bounds(selection, canvas)
    if bounds is None:
        raise PluginError("The selection is empty inside the image: select the area to inpaint first.")
    # The grown and feathered hole must fit in the region, whatever margin the user chose.
    margin = max(settings.margin, settings.grow + settings.feather)
    area = region.expand_rect(bounds, margin, canvas)
    doc.waitForDone()  # the projection must include every finished stroke
    anchor = _anchor_layer(doc.activeNode())
    if settings.source == "layer":
        if anchor is None:
            raise PluginError("The source is set to the active layer, but no layer is active.")
        if (anchor.colorModel(), anchor.colorDepth()) != (doc.colorModel(), doc.colorDepth()):
            raise PluginError(
                "The active layer is %s but the image is %s: convert the layer or use the visible "
                "image as the source. Nothing was changed."
                % (formats.describe(anchor.colorModel(), anchor.colorDepth()),
                   formats.describe(doc.colorModel(), doc.colorDepth())))
        raw = anchor.pixelData(area.x, area.y, area.width, area.height)
    else:
        raw = doc.pixelData(area.x, area.y, area.width, area.height)
    pixels = bytes(raw)
    expected = area.area * fmt.bytes_per_pixel
    if len(pixels) != expected:
        raise PluginError("Krita returned %d bytes of pixels for the region, expected %d. Nothing was changed."
                          % (len(pixels), expected))
    mask = bytes(selection.pixelData(area.x, area.y, area.width, area.height))
    return PreparedInpaint(document=doc, anchor=anchor, region=area, selection_bounds=bounds, fmt=fmt,
                           pixels=pixels, mask=mask, canvas=_canvas_signature(doc))


def _document_is_open(app: Any, doc: Any) -> bool:
    return any(d == doc for d in app.documents())


def _still_in_tree(node: Any, root: Any) -> bool:
    """True when `node` can still be reached from the document's root (it was not deleted)."""
    parent = node.parentNode()
    if parent is None:
        return False
    if not any(child == node for child in parent.childNodes()):
        return False
    return parent == root or _still_in_tree(parent, root)


def layer_pixels(job: PreparedInpaint, result: bytes) -> bytes:
    """The new layer's bytes for `job.region` from the backend's "layer" result (no Krita calls).

    Raises PluginError when the result does not have the region's size: a truncated reply must
    never become a half-written layer.
    """
    try:
        return region.build_layer_pixels(result, job.region, job.fmt)
    except region.RegionError as exc:
        raise PluginError("The backend returned a malformed result (%s). Nothing was changed." % exc) from None


def apply_result(app: Any, job: PreparedInpaint, pixels: bytes) -> Any:
    """Add `pixels` (from `layer_pixels`) as a new paint layer above the anchor layer: one undo step.

    The layer is filled while it is not yet in the image, then inserted with one addChildNode,
    which is a single undoable command in Krita (undo removes the layer and its pixels). No
    existing layer is touched. Raises PluginError, leaving the image unchanged, when the document
    was closed or changed size or colour space during the job.
    """
    doc = job.document
    if not _document_is_open(app, doc):
        raise PluginError("The image was closed while inpainting; the result was discarded.")
    if _canvas_signature(doc) != job.canvas:
        raise PluginError("The image changed size or colour space while inpainting; the result was "
                          "discarded. Run Inpaint Selection again.")
    area = job.region
    if len(pixels) != area.area * job.fmt.bytes_per_pixel:
        raise PluginError("The result has %d bytes, the region needs %d. Nothing was changed."
                          % (len(pixels), area.area * job.fmt.bytes_per_pixel))
    root = doc.rootNode()
    anchor = job.anchor if job.anchor is not None and _still_in_tree(job.anchor, root) else None
    if anchor is None:
        # No active layer (or it was deleted meanwhile): go to the top of the stack, explicitly
        # above the topmost layer rather than relying on what `above=None` means in each version.
        layers = [n for n in root.childNodes() if n.type() not in _MASK_NODE_TYPES]
        anchor = layers[-1] if layers else None
    parent = anchor.parentNode() if anchor is not None else root
    layer = doc.createNode(LAYER_NAME, "paintlayer")
    layer.setPixelData(pixels, area.x, area.y, area.width, area.height)
    if not parent.addChildNode(layer, anchor):
        raise PluginError("Krita refused to add the result layer (is the group locked?). Nothing was changed.")
    doc.refreshProjection()
    return layer
