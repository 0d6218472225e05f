"""A pickle module for `torch.load` that builds tensors and plain data and runs nothing else.

Official LaMa checkpoints pickle omegaconf and Lightning objects beside the weights, which
`torch.load(weights_only=True)` refuses. Unpickling those classes for real would import and run
whatever code the file names (a `__reduce__` can call any function). This module is passed to
`torch.load(..., weights_only=False, pickle_module=safe_unpickle)`: torch's own zip/legacy
reader still resolves persistent ids to storages (`("storage", storage_type, key, location,
numel)`, storage classes mapped by torch before our `find_class` sees them), while every global
the pickle names goes through `Unpickler.find_class` below. Only tensor rebuild functions (and a
guarded `_rebuild_from_type_v2`), dtypes, `torch.Size`/`torch.device`, `OrderedDict` and plain
builtin containers resolve to real objects; any other global becomes an `InertObject` subclass
that records its name and arguments and executes nothing, so the weights load and the rest of
the checkpoint is data we never call.
"""
from __future__ import annotations

import _codecs
import _compat_pickle
import builtins
import collections
import io
import pickle
from typing import Any, BinaryIO

import torch
import torch._utils

UnpicklingError = pickle.UnpicklingError

_DTYPES = {name: value for name, value in vars(torch).items() if isinstance(value, torch.dtype)}


def rebuild_from_type_v2(func: Any, new_type: Any, args: tuple, state: Any) -> Any:
    """torch's `_rebuild_from_type_v2` (tensors that carried Python attributes), minus the parts that
    could reach code: the rebuild function must be allowlisted, the type a plain Tensor or
    Parameter, and the attributes are dropped (weights do not need them)."""
    allowed = any(func is known for known in _REBUILD_FUNCTIONS)  # identity: `==` on tensors is elementwise
    if not allowed or not (new_type is torch.Tensor or new_type is torch.nn.Parameter):
        return placeholder_class("torch._tensor", "_rebuild_from_type_v2")(func, new_type, args)
    tensor = func(*args)
    return tensor if type(tensor) is new_type else tensor.as_subclass(new_type)


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): rebuild_from_type_v2,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch", "UntypedStorage"): torch.UntypedStorage,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): builtins.set,
    ("builtins", "frozenset"): builtins.frozenset,
    ("builtins", "bytearray"): builtins.bytearray,
    ("builtins", "complex"): builtins.complex,
    ("builtins", "slice"): builtins.slice,
    ("_codecs", "encode"): _codecs.encode,  # how protocol-2 pickles store bytes
}
if hasattr(torch._utils, "_rebuild_tensor_v3"):
    ALLOWED_GLOBALS[("torch._utils", "_rebuild_tensor_v3")] = torch._utils._rebuild_tensor_v3
ALLOWED_GLOBALS.update({("torch", name): dtype for name, dtype in _DTYPES.items()})
_REBUILD_FUNCTIONS = tuple(value for (module, name), value in ALLOWED_GLOBALS.items()
                           if module == "torch._utils" and name.startswith("_rebuild"))


class InertObject:
    """Stands in for an object of an untrusted class: keeps what the pickle said, runs nothing."""

    pickled_global = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "InertObject":
        instance = super().__new__(cls)
        instance.__dict__["args"] = args
        instance.__dict__["state"] = None
        instance.__dict__["items"] = {}
        instance.__dict__["list"] = []
        return instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["args"] = args

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__["items"][key] = value

    def append(self, value: Any) -> None:
        self.__dict__["list"].append(value)

    def extend(self, values: Any) -> None:
        self.__dict__["list"].extend(values)

    def __call__(self, *args: Any, **kwargs: Any) -> "InertObject":
        """A pickled bound method (`getattr(obj, name)`) may be called in turn; that stays inert too."""
        return placeholder_class(self.pickled_global, "()")(*args)

    def __repr__(self) -> str:
        return f"<inert {self.pickled_global}>"


_PLACEHOLDERS: dict[tuple[str, str], type[InertObject]] = {}


def placeholder_class(module: str, name: str) -> type[InertObject]:
    """One inert class per pickled global, so equal names compare as the same type."""
    key = (str(module), str(name))
    if key not in _PLACEHOLDERS:
        separator = "" if key[1] == "()" else "."
        _PLACEHOLDERS[key] = type("Inert", (InertObject,), {"pickled_global": f"{key[0]}{separator}{key[1]}"})
    return _PLACEHOLDERS[key]


def python3_name(module: str, name: str) -> tuple[str, str]:
    """Protocol-2 pickles (torch.save's default) name Python 2 modules such as `__builtin__`."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class Unpickler(pickle.Unpickler):
    """`find_class` is the only way a pickle reaches code; here it reaches only the allowlist."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        module, name = python3_name(module, name)
        allowed = ALLOWED_GLOBALS.get((module, name))
        if allowed is not None:
            return allowed
        return placeholder_class(module, name)


def load(file: BinaryIO, **kwargs: Any) -> Any:
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    return load(io.BytesIO(data), **kwargs)
