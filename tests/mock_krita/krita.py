"""A small stand-in for Krita's `krita` module, for the plugin's fast tests.

It models what the plugin relies on, with Krita 5.1's real behaviour (checked in the real-Krita
tier, tests/krita_tier/): pixels are packed row-major buffers in the document's colour space (integer
RGBA is B,G,R,A in memory), pixelData outside the canvas reads as zeros, the selection is one
byte per pixel, Node.setPixelData on a layer already in the image is applied but NOT undoable,
and Node.addChildNode is one undo command. The undo log lets tests count undo steps and see
edits that Krita could not undo.
"""
from typing import Dict, List, Optional, Tuple

from PyQt5.QtCore import QObject, QRect
from PyQt5.QtWidgets import QAction, QDockWidget

BYTES_PER_PIXEL = {("RGBA", "U8"): 4, ("RGBA", "U16"): 8, ("RGBA", "F16"): 8, ("RGBA", "F32"): 16,
                   ("CMYKA", "U8"): 5, ("LABA", "U16"): 8, ("GRAYA", "U8"): 2, ("GRAYA", "F32"): 8}


def _read(buffer: bytes, canvas_w: int, canvas_h: int, bpp: int, x: int, y: int, w: int, h: int) -> bytes:
    """Rows of a canvas-sized buffer; pixels outside the canvas read as zeros (like Krita)."""
    out = bytearray(w * h * bpp)
    for row in range(h):
        cy = y + row
        if not 0 <= cy < canvas_h:
            continue
        x0, x1 = max(x, 0), min(x + w, canvas_w)
        if x0 >= x1:
            continue
        src = (cy * canvas_w + x0) * bpp
        dst = (row * w + (x0 - x)) * bpp
        out[dst:dst + (x1 - x0) * bpp] = buffer[src:src + (x1 - x0) * bpp]
    return bytes(out)


class Selection:
    def __init__(self, width: int, height: int, mask: Optional[bytes] = None) -> None:
        self._w, self._h = width, height
        self.mask = bytearray(mask if mask is not None else bytes(width * height))

    def select(self, x: int, y: int, w: int, h: int, value: int) -> None:
        for row in range(max(y, 0), min(y + h, self._h)):
            for col in range(max(x, 0), min(x + w, self._w)):
                self.mask[row * self._w + col] = value

    def _bounds(self) -> Tuple[int, int, int, int]:
        xs = [i % self._w for i, v in enumerate(self.mask) if v]
        ys = [i // self._w for i, v in enumerate(self.mask) if v]
        if not xs:
            return (0, 0, 0, 0)
        return (min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)

    def x(self) -> int:
        return self._bounds()[0]

    def y(self) -> int:
        return self._bounds()[1]

    def width(self) -> int:
        return self._bounds()[2]

    def height(self) -> int:
        return self._bounds()[3]

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        return _read(bytes(self.mask), self._w, self._h, 1, x, y, w, h)


class Node:
    def __init__(self, doc: "Document", name: str, node_type: str = "paintlayer",
                 color: Optional[Tuple[str, str]] = None) -> None:
        self._doc = doc
        self._name = name
        self._type = node_type
        self._model, self._depth = color or (doc.colorModel(), doc.colorDepth())
        self._bpp = BYTES_PER_PIXEL[(self._model, self._depth)]
        self.pixels = bytearray(doc.width() * doc.height() * self._bpp)
        self.children: List["Node"] = []
        self.parent: Optional["Node"] = None

    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return self._type

    def colorModel(self) -> str:
        return self._model

    def colorDepth(self) -> str:
        return self._depth

    def parentNode(self) -> Optional["Node"]:
        return self.parent

    def childNodes(self) -> List["Node"]:
        return list(self.children)  # bottom to top, like Krita

    def in_tree(self) -> bool:
        node = self
        while node.parent is not None:
            node = node.parent
        return node is self._doc.root

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        return _read(bytes(self.pixels), self._doc.width(), self._doc.height(), self._bpp, x, y, w, h)

    def setPixelData(self, data: bytes, x: int, y: int, w: int, h: int) -> bool:
        if len(data) != w * h * self._bpp:
            raise ValueError("setPixelData needs exactly w*h*bpp bytes")
        cw = self._doc.width()
        for row in range(h):
            for col in range(w):
                cx, cy = x + col, y + row
                if 0 <= cx < cw and 0 <= cy < self._doc.height():
                    src = (row * w + col) * self._bpp
                    dst = (cy * cw + cx) * self._bpp
                    self.pixels[dst:dst + self._bpp] = data[src:src + self._bpp]
        if self.in_tree():
            self._doc.undo_log.append(("not undoable: setPixelData", self._name))
        return True

    def bounds(self) -> QRect:
        cw, bpp = self._doc.width(), self._bpp
        hits = [i // bpp for i in range(0, len(self.pixels), bpp) if any(self.pixels[i:i + bpp])]
        if not hits:
            return QRect()
        xs, ys = [p % cw for p in hits], [p // cw for p in hits]
        return QRect(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)

    def addChildNode(self, child: "Node", above: Optional["Node"]) -> bool:
        if self._doc.refuse_add:
            return False
        # Krita 5.1.5 (checked with kritarunner): above=None puts the child on top.
        index = self.children.index(above) + 1 if above is not None else len(self.children)
        self.children.insert(index, child)
        child.parent = self
        self._doc.undo_log.append(("addChildNode", child.name()))
        return True

    def remove(self) -> bool:
        if self.parent is not None:
            self.parent.children.remove(self)
            self.parent = None
        return True


class Document:
    def __init__(self, width: int, height: int, model: str = "RGBA", depth: str = "U8") -> None:
        self._w, self._h, self._model, self._depth = width, height, model, depth
        self.bpp = BYTES_PER_PIXEL[(model, depth)]
        self.undo_log: List[Tuple[str, str]] = []
        self.refuse_add = False
        self.root = Node(self, "root", "grouplayer")
        self.projection = bytearray(width * height * self.bpp)
        self._selection: Optional[Selection] = None
        self._active: Optional[Node] = None
        self.wait_calls = 0
        self.refreshed = 0

    # canvas
    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h

    def colorModel(self) -> str:
        return self._model

    def colorDepth(self) -> str:
        return self._depth

    def resize_for_test(self, width: int, height: int) -> None:
        self._w, self._h = width, height

    # layers
    def rootNode(self) -> Node:
        return self.root

    def createNode(self, name: str, node_type: str) -> Node:
        return Node(self, name, node_type)

    def add_layer(self, name: str, pixels: Optional[bytes] = None, color: Optional[Tuple[str, str]] = None,
                  node_type: str = "paintlayer") -> Node:
        """Test helper: a layer on top of the stack (bypasses the undo log, like opening a file)."""
        node = Node(self, name, node_type, color)
        if pixels is not None:
            node.pixels[:] = pixels
        self.root.children.append(node)
        node.parent = self.root
        return node

    def activeNode(self) -> Optional[Node]:
        return self._active

    def setActiveNode(self, node: Optional[Node]) -> None:
        self._active = node

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        return _read(bytes(self.projection), self._w, self._h, self.bpp, x, y, w, h)

    # selection
    def selection(self) -> Optional[Selection]:
        return self._selection

    def setSelection(self, selection: Optional[Selection]) -> None:
        self._selection = selection

    def waitForDone(self) -> None:
        self.wait_calls += 1

    def refreshProjection(self) -> None:
        self.refreshed += 1


class Window:
    def __init__(self) -> None:
        self.actions: Dict[str, Tuple[QAction, str]] = {}

    def createAction(self, action_id: str, text: str, menu_location: str) -> QAction:
        action = QAction(text)
        action.setObjectName(action_id)
        self.actions[action_id] = (action, menu_location)
        return action

    def qwindow(self) -> None:
        return None


class Krita(QObject):
    _instance: Optional["Krita"] = None

    def __init__(self) -> None:
        super().__init__()
        self.settings: Dict[Tuple[str, str], str] = {}
        self.docs: List[Document] = []
        self.active_document: Optional[Document] = None
        self.extensions: list = []
        self.docker_factories: list = []

    @classmethod
    def instance(cls) -> "Krita":
        if cls._instance is None:
            cls._instance = Krita()
        return cls._instance

    def readSetting(self, group: str, name: str, default: str) -> str:
        return self.settings.get((group, name), default)

    def writeSetting(self, group: str, name: str, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Krita.writeSetting takes strings")
        self.settings[(group, name)] = value

    def documents(self) -> List[Document]:
        return list(self.docs)

    def activeDocument(self) -> Optional[Document]:
        return self.active_document

    def activeWindow(self) -> Optional[Window]:
        return None

    def addExtension(self, extension: "Extension") -> None:
        self.extensions.append(extension)

    def addDockWidgetFactory(self, factory: "DockWidgetFactory") -> None:
        self.docker_factories.append(factory)


class Extension(QObject):
    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)


class DockWidget(QDockWidget):
    def canvasChanged(self, canvas: object) -> None:
        raise NotImplementedError


class DockWidgetFactoryBase:
    DockRight = 1


class DockWidgetFactory:
    def __init__(self, docker_id: str, position: int, cls: type) -> None:
        self.docker_id, self.position, self.cls = docker_id, position, cls
