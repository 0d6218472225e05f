"""A small stand-in for the Gimp/Gegl/GLib objects the LaMa plug-in uses, for fast tests.

Only the calls the plug-in makes exist, with GIMP 3.0's Python signatures (checked against the
real API by tests/test_gimp_integration.py). Pixel buffers are numpy arrays in the layer's own
sample type; reads and writes in another babl format convert like GEGL does for sRGB-encoded
formats (u8 <-> float by /255). Every change to an image is appended to `image.events`, so a
test can assert the exact undo-group structure and that nothing else was touched.
"""
from __future__ import annotations

import enum
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

import numpy as np


class Precision(enum.Enum):
    U8_LINEAR = 100
    U8_NON_LINEAR = 150
    U8_PERCEPTUAL = 175
    U16_NON_LINEAR = 250
    HALF_LINEAR = 500
    FLOAT_LINEAR = 600
    FLOAT_NON_LINEAR = 650


class ImageBaseType(enum.Enum):
    RGB = 0
    GRAY = 1
    INDEXED = 2


class ImageType(enum.Enum):
    RGB_IMAGE = 0
    RGBA_IMAGE = 1
    GRAY_IMAGE = 2
    GRAYA_IMAGE = 3


class LayerMode(enum.Enum):
    NORMAL = 28


class RunMode(enum.Enum):
    INTERACTIVE = 0
    NONINTERACTIVE = 1
    WITH_LAST_VALS = 2


class PDBStatusType(enum.Enum):
    EXECUTION_ERROR = 0
    CALLING_ERROR = 1
    PASS_THROUGH = 2
    SUCCESS = 3
    CANCEL = 4


class ProcedureSensitivityMask(enum.IntFlag):
    DRAWABLE = 1 << 0
    DRAWABLES = 1 << 2


class PDBProcType(enum.Enum):
    PLUGIN = 1


class AbyssPolicy(enum.Enum):
    NONE = 0


FORMATS = {"R'G'B'A u8": (np.uint8, 4), "R'G'B'A float": (np.float32, 4), "Y u8": (np.uint8, 1)}


def _convert(array: np.ndarray, dtype: Any) -> np.ndarray:
    if array.dtype == dtype:
        return array.copy()
    if dtype == np.uint8:
        return np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)
    return (array.astype(np.float32) / 255.0).astype(dtype)


@dataclass
class Rectangle:
    x: int
    y: int
    width: int
    height: int

    @classmethod
    def new(cls, x: int, y: int, width: int, height: int) -> "Rectangle":
        return cls(x, y, width, height)


class Buffer:
    """A GeglBuffer over a numpy array (H x W x C); reads outside it give zeros (abyss NONE)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.flushed = 0

    def get(self, rect: Rectangle, scale: float, babl_format: str, abyss: AbyssPolicy) -> bytes:
        assert scale == 1.0 and abyss == AbyssPolicy.NONE
        dtype, channels = FORMATS[babl_format]
        h, w = self.array.shape[:2]
        out = np.zeros((rect.height, rect.width, self.array.shape[2]), self.array.dtype)
        x0, y0 = max(rect.x, 0), max(rect.y, 0)
        x1, y1 = min(rect.x + rect.width, w), min(rect.y + rect.height, h)
        if x1 > x0 and y1 > y0:
            out[y0 - rect.y:y1 - rect.y, x0 - rect.x:x1 - rect.x] = self.array[y0:y1, x0:x1]
        assert out.shape[2] == channels, "format %s does not fit a %d-channel buffer" % (babl_format, out.shape[2])
        return _convert(out, dtype).tobytes()

    def set(self, rect: Rectangle, babl_format: str, data: bytes) -> None:
        dtype, channels = FORMATS[babl_format]
        values = np.frombuffer(data, dtype).reshape(rect.height, rect.width, channels)
        self.array[rect.y:rect.y + rect.height, rect.x:rect.x + rect.width] = _convert(values, self.array.dtype)

    def flush(self) -> None:
        self.flushed += 1


class Item:
    deleted = False

    def delete(self) -> bool:
        self.deleted = True
        return True


class Layer(Item):
    """A layer: name, offsets and an RGBA buffer in the image's sample type."""

    def __init__(self, image: "Image", name: str, width: int, height: int, kind: ImageType = ImageType.RGBA_IMAGE,
                 opacity: float = 100.0, mode: LayerMode = LayerMode.NORMAL) -> None:
        self.image, self.name, self.kind, self.opacity, self.mode = image, name, kind, opacity, mode
        self.x = self.y = 0
        self.buffer = Buffer(np.zeros((height, width, 4), image.sample_dtype()))
        self.parent: Optional[Layer] = None

    @classmethod
    def new(cls, image: "Image", name: str, width: int, height: int, kind: ImageType, opacity: float,
            mode: LayerMode) -> "Layer":
        image.events.append(("layer-new", name))
        return cls(image, name, width, height, kind, opacity, mode)

    @classmethod
    def new_from_visible(cls, image: "Image", dest: "Image", name: str) -> "Layer":
        """The composite: here simply the image's `visible` array (tests set it)."""
        layer = cls(dest, name, image.width, image.height)
        layer.buffer.array[...] = image.visible
        image.temporary.append(layer)
        return layer

    def get_name(self) -> str:
        return self.name

    def get_offsets(self):
        return True, self.x, self.y

    def set_offsets(self, x: int, y: int) -> bool:
        if self in self.image.layers:
            self.image.events.append(("offsets", self.name, x, y))
        self.x, self.y = x, y
        return True

    def get_width(self) -> int:
        return self.buffer.array.shape[1]

    def get_height(self) -> int:
        return self.buffer.array.shape[0]

    def get_buffer(self) -> Buffer:
        return self.buffer

    def get_parent(self) -> Optional["Layer"]:
        return self.parent

    def is_layer(self) -> bool:
        return True


class Channel(Item):
    """A channel or layer mask: a drawable that is not a layer."""

    def __init__(self, name: str = "mask") -> None:
        self.name = name

    def is_layer(self) -> bool:
        return False

    def get_name(self) -> str:
        return self.name


class Selection:
    """The selection channel (one u8 per image pixel) and Gimp.Selection.bounds."""

    def __init__(self, width: int, height: int) -> None:
        self.buffer = Buffer(np.zeros((height, width, 1), np.uint8))

    def get_buffer(self) -> Buffer:
        return self.buffer

    @staticmethod
    def bounds(image: "Image"):
        values = image.selection.buffer.array[..., 0]
        ys, xs = np.nonzero(values)
        if len(xs) == 0:
            return True, False, 0, 0, image.width, image.height
        return True, True, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


class Image:
    """An image with a layer stack (index 0 = top), a selection and an event log."""

    def __init__(self, width: int, height: int, precision: Precision = Precision.U8_NON_LINEAR,
                 base_type: ImageBaseType = ImageBaseType.RGB) -> None:
        self.width, self.height, self.precision, self.base_type = width, height, precision, base_type
        self.layers: List[Layer] = []
        self.selection = Selection(width, height)
        self.events: List[tuple] = []
        self.temporary: List[Layer] = []
        self.visible = np.zeros((height, width, 4), self.sample_dtype())
        self.refuse_insert = False

    def sample_dtype(self) -> Any:
        return np.uint8 if self.precision.name.startswith("U8") else np.float32

    def get_precision(self) -> Precision:
        return self.precision

    def get_base_type(self) -> ImageBaseType:
        return self.base_type

    def get_width(self) -> int:
        return self.width

    def get_height(self) -> int:
        return self.height

    def get_selection(self) -> Selection:
        return self.selection

    def get_item_position(self, item: Layer) -> int:
        return self.layers.index(item)

    def insert_layer(self, layer: Layer, parent: Optional[Layer], position: int) -> bool:
        self.events.append(("insert", layer.name, parent, position))
        if self.refuse_insert:
            return False
        self.layers.insert(position, layer)
        layer.parent = parent
        return True

    def undo_group_start(self) -> bool:
        self.events.append(("undo-group-start",))
        return True

    def undo_group_end(self) -> bool:
        self.events.append(("undo-group-end",))
        return True

    def add_layer(self, name: str, x: int, y: int, array: np.ndarray) -> Layer:
        """Test helper: put a layer with `array` pixels at (x, y) at the bottom of the stack."""
        layer = Layer(self, name, array.shape[1], array.shape[0])
        layer.buffer.array[...] = array
        layer.x, layer.y = x, y
        self.layers.append(layer)
        return layer


class Choice:
    def __init__(self) -> None:
        self.items: List[tuple] = []

    @classmethod
    def new(cls) -> "Choice":
        return cls()

    def add(self, nick: str, ident: int, label: str, help_text: str) -> None:
        self.items.append((nick, ident, label, help_text))


class ImageProcedure:
    """Records what the plug-in registers."""

    def __init__(self, plugin: Any, name: str, proc_type: PDBProcType, run: Callable, data: Any) -> None:
        self.name, self.run_func = name, run
        self.arguments: dict = {}
        self.menu_paths: List[str] = []
        self.sensitivity = None
        self.image_types = self.menu_label = None
        self.documentation = self.attribution = None

    @classmethod
    def new(cls, plugin: Any, name: str, proc_type: PDBProcType, run: Callable, data: Any) -> "ImageProcedure":
        return cls(plugin, name, proc_type, run, data)

    def set_image_types(self, types_: str) -> None:
        self.image_types = types_

    def set_sensitivity_mask(self, mask: int) -> None:
        self.sensitivity = mask

    def set_menu_label(self, label: str) -> None:
        self.menu_label = label

    def add_menu_path(self, path: str) -> None:
        self.menu_paths.append(path)

    def set_documentation(self, *args: str) -> None:
        self.documentation = args

    def set_attribution(self, *args: str) -> None:
        self.attribution = args

    def add_int_argument(self, name, nick, blurb, low, high, value, flags) -> None:
        self.arguments[name] = ("int", low, high, value)

    def add_boolean_argument(self, name, nick, blurb, value, flags) -> None:
        self.arguments[name] = ("boolean", value)

    def add_choice_argument(self, name, nick, blurb, choice, value, flags) -> None:
        self.arguments[name] = ("choice", [item[0] for item in choice.items], value)

    def new_return_values(self, status: PDBStatusType, error: "GError") -> tuple:
        return status, error.message


class Config:
    """A GimpProcedureConfig holding argument values."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def get_property(self, name: str) -> Any:
        return self.values[name]


class GError(Exception):
    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Recorder:
    """Gimp.progress_* and Gimp.displays_flush calls, in order."""

    calls: List[tuple] = field(default_factory=list)


def build_modules(recorder: Recorder) -> types.ModuleType:
    """A fake `gi` package whose `gi.repository` holds Gimp, Gegl, GLib, GObject and GimpUi."""
    gimp = types.ModuleType("gi.repository.Gimp")
    for cls in (Precision, ImageBaseType, ImageType, LayerMode, RunMode, PDBStatusType, ProcedureSensitivityMask,
                PDBProcType, Layer, Image, Selection, Choice, ImageProcedure):
        setattr(gimp, cls.__name__, cls)
    gimp.PlugIn = type("PlugIn", (), {"__gtype__": "GimpPlugIn"})
    gimp.ProcedureConfig = Config
    gimp.progress_init = lambda text: recorder.calls.append(("init", text)) or True
    gimp.progress_update = lambda fraction: recorder.calls.append(("update", fraction)) or True
    gimp.progress_set_text = lambda text: recorder.calls.append(("text", text)) or True
    gimp.progress_end = lambda: recorder.calls.append(("end",)) or True
    gimp.displays_flush = lambda: recorder.calls.append(("flush",))
    gimp.message = lambda text: recorder.calls.append(("message", text))
    gimp.main = lambda gtype, argv: recorder.calls.append(("main", gtype))
    gegl = types.ModuleType("gi.repository.Gegl")
    gegl.Rectangle, gegl.AbyssPolicy = Rectangle, AbyssPolicy
    glib = types.ModuleType("gi.repository.GLib")
    glib.Error = GError
    gobject = types.ModuleType("gi.repository.GObject")
    gobject.ParamFlags = types.SimpleNamespace(READWRITE=3)
    gimpui = types.ModuleType("gi.repository.GimpUi")
    gimpui.dialog_answers = []

    class ProcedureDialog:
        @classmethod
        def new(cls, procedure, config, title):
            recorder.calls.append(("dialog", title))
            return cls()

        def fill(self, names):
            recorder.calls.append(("dialog-fill", names))

        def run(self):
            return gimpui.dialog_answers.pop(0)

        def destroy(self):
            recorder.calls.append(("dialog-destroy",))

    gimpui.ProcedureDialog = ProcedureDialog
    gimpui.init = lambda name: recorder.calls.append(("ui-init", name))
    repository = types.ModuleType("gi.repository")
    for name, module in (("Gimp", gimp), ("Gegl", gegl), ("GLib", glib), ("GObject", gobject), ("GimpUi", gimpui)):
        setattr(repository, name, module)
    gi = types.ModuleType("gi")
    gi.repository = repository
    gi.required = {}
    gi.require_version = lambda name, version: gi.required.__setitem__(name, version)
    return gi


def install(recorder: Recorder, plugin_dir: str) -> dict:
    """Put the fake `gi` in sys.modules and import the plug-in modules fresh from `plugin_dir`."""
    gi = build_modules(recorder)
    sys.modules["gi"] = gi
    sys.modules["gi.repository"] = gi.repository
    for name in ("Gimp", "Gegl", "GLib", "GObject", "GimpUi"):
        sys.modules["gi.repository." + name] = getattr(gi.repository, name)
    for name in ("lama_gimp_client", "lama_gimp_io", "lama_gimp_job", "lama_inpaint"):
        sys.modules.pop(name, None)
    if plugin_dir not in sys.path:
        sys.path.insert(0, plugin_dir)
    import importlib

    return {name: importlib.import_module(name) for name in ("lama_gimp_io", "lama_gimp_job", "lama_inpaint")}


def uninstall(plugin_dir: str) -> None:
    for name in ("gi", "gi.repository", "gi.repository.Gimp", "gi.repository.Gegl", "gi.repository.GLib",
                 "gi.repository.GObject", "gi.repository.GimpUi", "lama_gimp_client", "lama_gimp_io",
                 "lama_gimp_job", "lama_inpaint"):
        sys.modules.pop(name, None)
    if plugin_dir in sys.path:
        sys.path.remove(plugin_dir)
