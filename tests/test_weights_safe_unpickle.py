"""The restricted pickle module resolves only its allowlist; every other global stays inert."""
from __future__ import annotations

import collections
import copyreg
import os
import pickle
import pickletools
from pathlib import Path

import pytest
import torch

from lama_backend.weights import safe_unpickle
from lama_backend.weights.safe_unpickle import InertObject, Unpickler, loads


class RunsShell:
    """Unpickling this with the standard pickle module would run a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class DictConfigLike:
    """Like omegaconf's DictConfig: restored through BUILD (`__setstate__` / `__dict__`)."""

    def __init__(self, content: dict) -> None:
        self.content = content


def opcodes(data: bytes) -> set[str]:
    return {opcode.name for opcode, _argument, _position in pickletools.genops(data)}


@pytest.mark.parametrize("protocol, opcode", [(0, "GLOBAL"), (2, "GLOBAL"), (4, "STACK_GLOBAL")])
def test_os_system_is_never_called(tmp_path: Path, protocol: int, opcode: str) -> None:
    marker = tmp_path / f"ran-{protocol}"
    data = pickle.dumps(RunsShell(f"touch {marker}"), protocol=protocol)
    assert opcode in opcodes(data)
    result = loads(data)
    assert not marker.exists()
    assert isinstance(result, InertObject)
    assert result.pickled_global == f"{os.system.__module__}.system"
    assert result.args == (f"touch {marker}",)


def test_instance_opcode_builds_an_inert_object(tmp_path: Path) -> None:
    marker = tmp_path / "inst"
    data = f"(S'touch {marker}'\ni{os.system.__module__}\nsystem\n.".encode()  # INST: protocol-0 instantiation
    assert "INST" in opcodes(data)
    result = loads(data)
    assert not marker.exists() and isinstance(result, InertObject)


def test_dotted_names_are_not_walked() -> None:
    """Protocol 4 lets the standard find_class walk attributes (`path.join`); ours never does."""
    unpickler = Unpickler.__new__(Unpickler)
    assert issubclass(unpickler.find_class("os", "path.join"), InertObject)
    assert issubclass(unpickler.find_class("torch", "load"), InertObject)
    assert unpickler.find_class("torch._utils", "_rebuild_tensor_v2") is torch._utils._rebuild_tensor_v2


def test_extension_registry_goes_through_find_class(tmp_path: Path) -> None:
    code = 0x3A7
    copyreg.add_extension(os.system.__module__, "system", code)
    try:
        marker = tmp_path / "ext"
        data = pickle.dumps(RunsShell(f"touch {marker}"), protocol=2)
        assert "EXT2" in opcodes(data)
        result = loads(data)
    finally:
        copyreg.remove_extension(os.system.__module__, "system", code)
    assert not marker.exists() and isinstance(result, InertObject)


def test_plain_data_and_tensors_round_trip() -> None:
    value = {"list": [1, 2.5, "x", None, True], "set": {1, 2}, "bytes": b"\x00\xff", "tuple": (1, (2,)),
             "ordered": collections.OrderedDict(a=1), "size": torch.Size([2, 3]), "dtype": torch.float16,
             "complex": 1 + 2j}
    for protocol in (2, 4):
        assert loads(pickle.dumps(value, protocol=protocol)) == value


def test_python2_module_names_are_normalised() -> None:
    data = b"c__builtin__\neval\n(V1+1\ntR."
    result = loads(data)
    assert isinstance(result, InertObject) and result.pickled_global == "builtins.eval"


def test_inert_objects_keep_what_the_pickle_said() -> None:
    data = pickle.dumps(DictConfigLike({"generator": {"ngf": 64}}), protocol=2)
    assert "BUILD" in opcodes(data)
    result = loads(data)
    assert isinstance(result, InertObject) and not isinstance(result, DictConfigLike)
    assert result.pickled_global.endswith(".DictConfigLike")
    assert result.state == {"content": {"generator": {"ngf": 64}}}


class CallsABoundMethod:
    """`__reduce__` returning a bound method: pickled as getattr(obj, name), then called."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return Path(self.path).write_text, ("pickled code ran",)


def test_pickled_bound_methods_stay_inert_when_called(tmp_path: Path) -> None:
    marker = tmp_path / "bound"
    data = pickle.dumps(CallsABoundMethod(str(marker)), protocol=2)
    result = loads(data)
    assert not marker.exists()
    assert isinstance(result, InertObject)
    assert result.pickled_global == "builtins.getattr()" and result.args == ("pickled code ran",)


def test_tensors_with_python_attributes_load_without_them(tmp_path: Path) -> None:
    """torch pickles such tensors through `_rebuild_from_type_v2`; the attributes are not needed."""
    tagged = torch.arange(6.0).reshape(2, 3)
    tagged.note = RunsShell(f"touch {tmp_path / 'attr'}")
    path = tmp_path / "tagged.ckpt"
    torch.save({"state_dict": {"w": tagged, "p": torch.nn.Parameter(torch.ones(2))}, "cfg": DictConfigLike({})}, path)
    loaded = torch.load(path, weights_only=False, pickle_module=safe_unpickle)
    assert not (tmp_path / "attr").exists()
    assert type(loaded["state_dict"]["w"]) is torch.Tensor and torch.equal(loaded["state_dict"]["w"], tagged)
    assert not hasattr(loaded["state_dict"]["w"], "note")
    assert isinstance(loaded["state_dict"]["p"], torch.nn.Parameter)


def test_rebuild_from_type_refuses_other_functions_and_types() -> None:
    refused = [safe_unpickle.rebuild_from_type_v2(os.system, torch.Tensor, ("true",), None),
               safe_unpickle.rebuild_from_type_v2(torch._utils._rebuild_tensor_v2, DictConfigLike, (), None)]
    assert all(isinstance(result, InertObject) for result in refused)
