"""How a submission's results travel back to the grader.

The submission runs in a child process that the grader does not trust, so what comes back
must not be able to run code here: no pickle. A result is a JSON tree whose tensors and
arrays are replaced by a small record (kind, dtype, shape, offset into a byte blob); the
grader rebuilds plain tensors and arrays from raw bytes. A Tensor subclass comes back as
nothing but its class name: only an exact torch.Tensor or numpy.ndarray (or an exact
nn.Parameter, torch's own) is data, so no method of the submission's runs while a reply is made,
and no type is trusted by its name. Inputs sent to the child carry no mark of the grader.
"""
import json
import struct

import numpy as np
import torch

# Harness code: its builtins are a copy taken before any submission runs (one it replaced in the
# builtins module is not what this module calls).
__builtins__ = dict(vars(__import__("builtins")))

_TORCH_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool, torch.uint8,
    torch.int8, torch.int16, torch.int32, torch.int64, torch.complex64, torch.complex128)}


# Captured when this module loads, before any submission runs: the C methods a reply is made with,
# which a submission's patching of torch.Tensor cannot reach.
# Types are compared by identity only: `==`, `in`, isinstance and a type's name can all run a
# submission's code (a metaclass, a `__class__` property).
PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)
_NUMPY_SCALARS = tuple({id(t): t for t in np.sctypeDict.values() if isinstance(t, type) and issubclass(t, np.generic)}
                       .values())
_PLAIN_DATA = (type(None), bool, int, str)
_type_name = type.__dict__["__name__"].__get__
_type_mro = type.__dict__["__mro__"].__get__
_type_dict = type.__dict__["__dict__"].__get__
# What an object defines to pass for an array or a tensor without being one.
_PASSING_FOR = ("__class__", "__array__", "__array_interface__", "__array_struct__", "__torch_function__",
                "__torch_dispatch__", "__dlpack__")


def _one_of(kind, types):
    for t in types:
        if kind is t:
            return True
    return False


def type_name(obj):
    """The name of obj's type, read without running any of its code."""
    return type_name_of(type(obj))


def type_name_of(kind):
    return str(_type_name(kind))[:100]
_base = torch._C.TensorBase
_detach, _is_complex, _contiguous, _cpu = _base.detach, _base.is_complex, _base.contiguous, _base.cpu
_view, _reshape, _numpy, _numel = _base.view, _base.reshape, _base.numpy, _base.numel
_dtype, _shape, _requires_grad = _base.dtype.__get__, _base.shape.__get__, _base.requires_grad.__get__
_view_as_real, _contiguous_array = torch.view_as_real, np.ascontiguousarray
_no_torch_function = torch._C.DisableTorchFunction


class Opaque:
    """Stands in for a returned object the grader does not rebuild (its type name only)."""

    def __init__(self, type_name, text):
        self.type_name, self.text = type_name, text

    def __repr__(self):
        return f"<{self.type_name}: {self.text}>"


def encode(obj):
    """Child side: turn a result into bytes (header length, JSON header, raw data)."""
    blobs = []

    def walk(o, depth=0):
        if depth > 20:
            return {"__object__": "nested too deep", "text": ""}
        kind = type(o)
        if _one_of(kind, PLAIN_TENSORS):
            t = _detach(o)
            if _is_complex(t):
                t = _view_as_real(t)
            t = _contiguous(_cpu(t))
            raw = _numpy(_view(_reshape(t, (-1,)), torch.uint8)).tobytes() if _numel(t) else b""
            blobs.append(raw)
            return {"__tensor__": len(blobs) - 1, "dtype": str(_dtype(o)).removeprefix("torch."),
                    "shape": list(_shape(o)), "requires_grad": bool(_requires_grad(o))}
        if kind is np.ndarray:
            if o.dtype.hasobject:
                return {"__object__": "ndarray of objects", "text": ""}
            a = _contiguous_array(o)
            blobs.append(a.tobytes())
            return {"__array__": len(blobs) - 1, "dtype": a.dtype.str, "shape": list(a.shape)}
        if _one_of(kind, _NUMPY_SCALARS):
            return walk(o.item(), depth + 1)
        if _one_of(kind, _PLAIN_DATA):
            return o
        if kind is bytes:
            blobs.append(o)
            return {"__bytes__": len(blobs) - 1}
        if kind is float:
            return {"__float__": repr(o)}
        if kind is tuple or kind is list:
            return {"__seq__": "tuple" if kind is tuple else "list", "items": [walk(x, depth + 1) for x in o]}
        if kind is dict:
            return {"__dict__": [[walk(k, depth + 1), walk(v, depth + 1)] for k, v in o.items()]}
        if kind is torch.dtype:
            return {"__dtype__": str(o)}
        # Anything else is named by its type, never asked to describe itself (its repr is its code).
        return {"__object__": type_name(o), "text": ""}

    with _no_torch_function():          # no __torch_function__, the submission's or torch's, is consulted
        tree = walk(obj)
    header = json.dumps(tree).encode()
    return struct.pack("<I", len(header)) + header + struct.pack("<I", len(blobs)) + b"".join(
        struct.pack("<Q", len(b)) + b for b in blobs)


def disguised(obj, depth=0):
    """Child side: type names of what a result holds in place of plain data: a Tensor or ndarray
    subclass, or an object that claims to be one (`__class__`). Only exact types are data (an
    nn.Parameter exactly, torch's own, counts as a tensor); returning anything that passes for a
    tensor without being one is itself an attempt to fool the grader."""
    found = []
    if depth > 20:
        return found
    kind = type(obj)
    if _one_of(kind, PLAIN_TENSORS) or kind is np.ndarray:
        return found
    if kind is tuple or kind is list:
        for x in obj:
            found += disguised(x, depth + 1)
    elif kind is dict:
        for k, v in obj.items():
            found += disguised(k, depth + 1) + disguised(v, depth + 1)
    else:
        mro = _type_mro(kind)
        if any(c is torch.Tensor or c is np.ndarray for c in mro) or any(
                name in _type_dict(c) for c in mro[:-1] for name in _PASSING_FOR):
            found.append(type_name(obj))
    return found


def decode(data, gradients=False):
    """Rebuild plain tensors and arrays from what `encode` wrote; with `gradients` (a request, in
    the child), a tensor sent with requires_grad gets it back. Nothing else is attached."""
    (n,) = struct.unpack_from("<I", data, 0)
    tree = json.loads(data[4:4 + n])
    pos = 4 + n
    (count,) = struct.unpack_from("<I", data, pos)
    pos += 4
    blobs = []
    for _ in range(count):
        (size,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        blobs.append(data[pos:pos + size])
        pos += size

    def build(o):
        if isinstance(o, dict):
            if "__tensor__" in o:
                dtype = _TORCH_DTYPES[o["dtype"]]
                shape = o["shape"]
                raw = blobs[o["__tensor__"]]
                storage_dtype = torch.float32 if dtype == torch.complex64 else (
                    torch.float64 if dtype == torch.complex128 else dtype)
                if raw:
                    t = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(storage_dtype)
                else:
                    t = torch.empty(0, dtype=storage_dtype)
                if dtype.is_complex:
                    t = torch.view_as_complex(t.reshape(*shape, 2))
                t = t.reshape(shape)
                return t.requires_grad_() if gradients and o["requires_grad"] else t
            if "__array__" in o:
                return np.frombuffer(blobs[o["__array__"]], dtype=np.dtype(o["dtype"])).reshape(o["shape"]).copy()
            if "__float__" in o:
                return float(o["__float__"])
            if "__bytes__" in o:
                return bytes(blobs[o["__bytes__"]])
            if "__seq__" in o:
                items = [build(x) for x in o["items"]]
                return tuple(items) if o["__seq__"] == "tuple" else items
            if "__dict__" in o:
                return {_hashable(build(k)): build(v) for k, v in o["__dict__"]}
            if "__dtype__" in o:
                return getattr(torch, o["__dtype__"].removeprefix("torch."), o["__dtype__"])
            return Opaque(o.get("__object__", "object"), o.get("text", ""))
        return o

    return build(tree)


def _hashable(k):
    return k if isinstance(k, (str, int, float, bool, type(None), tuple)) else repr(k)


# -- framing: how one reply travels from the sandbox to the grader -------------------------------
TOKEN_BYTES = 16      # a secret the grader gives each child: a frame without it was forged
HEADER = struct.Struct("<Q")


def frame(token, kind, payload):
    """Child side: one frame (length, token, a kind byte, payload)."""
    body = token + kind + payload
    return HEADER.pack(len(body)) + body


def request(obj):
    """Grader side: one request to the child, in the same plain encoding as replies (faster than
    pickling tensors, and the child then unpickles nothing either)."""
    data = encode(obj)
    return HEADER.pack(len(data)) + data


def decode_request(data):
    """Child side: a request's inputs as the grader sent them, requires_grad included."""
    return decode(data, gradients=True)
