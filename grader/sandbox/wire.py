"""How a submission's results travel back to the grader.

The submission runs in a child process that the grader does not trust, so what comes back
must not be able to run code here: no pickle. A result is a JSON tree whose tensors and
arrays are replaced by a small record (kind, dtype, shape, offset into a byte blob); the
grader rebuilds plain tensors and arrays from raw bytes. A Tensor subclass comes back as
its bytes plus its class name, so it can neither lie about its values nor pass as a Tensor.
"""
import json
import struct

import numpy as np
import torch

_TORCH_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool, torch.uint8,
    torch.int8, torch.int16, torch.int32, torch.int64, torch.complex64, torch.complex128)}


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
        if isinstance(o, torch.Tensor):
            kind = "Tensor" if type(o) is torch.Tensor else type(o).__name__
            t = torch.Tensor.detach(o)
            t = torch.Tensor.cpu(torch.Tensor.contiguous(t.as_subclass(torch.Tensor)))
            if t.is_complex():
                t = torch.view_as_real(t)
            raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
            blobs.append(raw)
            return {"__tensor__": len(blobs) - 1, "kind": kind, "dtype": str(o.dtype).removeprefix("torch."),
                    "shape": list(o.shape), "device": str(o.device), "requires_grad": bool(o.requires_grad)}
        if isinstance(o, np.ndarray):
            kind = "ndarray" if type(o) is np.ndarray else type(o).__name__
            a = np.ascontiguousarray(np.asarray(o))
            if a.dtype == object:
                return {"__object__": "ndarray of objects", "text": ""}
            blobs.append(a.tobytes())
            return {"__array__": len(blobs) - 1, "kind": kind, "dtype": a.dtype.str, "shape": list(a.shape)}
        if isinstance(o, np.generic):
            return walk(o.item(), depth + 1)
        if o is None or type(o) in (bool, int, str):
            return o
        if type(o) is bytes:
            blobs.append(o)
            return {"__bytes__": len(blobs) - 1}
        if type(o) is float:
            return {"__float__": repr(o)}
        if type(o) in (tuple, list):
            return {"__seq__": type(o).__name__, "items": [walk(x, depth + 1) for x in o]}
        if type(o) is dict:
            return {"__dict__": [[walk(k, depth + 1), walk(v, depth + 1)] for k, v in o.items()]}
        if isinstance(o, torch.dtype):
            return {"__dtype__": str(o)}
        try:
            text = repr(o)[:200]
        except BaseException:
            text = "?"
        return {"__object__": type(o).__name__, "text": text}

    header = json.dumps(walk(obj)).encode()
    return struct.pack("<I", len(header)) + header + struct.pack("<I", len(blobs)) + b"".join(
        struct.pack("<Q", len(b)) + b for b in blobs)


def disguised(obj, depth=0):
    """Child side: type names of Tensor or ndarray subclasses in a result (nn.Parameter aside).

    A subclass can override comparisons, arithmetic or __torch_function__ to lie; only its raw
    bytes travel, but returning one is itself an attempt to fool the grader.
    """
    found = []
    if depth > 20:
        return found
    if isinstance(obj, torch.Tensor):
        if type(obj) is not torch.Tensor and not isinstance(obj, torch.nn.Parameter) and \
                type(obj).__name__ != "Buffer":
            found.append(type(obj).__name__)
    elif isinstance(obj, np.ndarray):
        if type(obj) is not np.ndarray:
            found.append(type(obj).__name__)
    elif type(obj) in (tuple, list):
        for x in obj:
            found += disguised(x, depth + 1)
    elif type(obj) is dict:
        for k, v in obj.items():
            found += disguised(k, depth + 1) + disguised(v, depth + 1)
    return found


def decode(data):
    """Grader side: rebuild plain tensors and arrays from what `encode` wrote."""
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
                t.grader_kind = o["kind"]           # "Tensor" unless the submission returned a subclass
                t.grader_device = o["device"]
                t.grader_requires_grad = o["requires_grad"]
                return t
            if "__array__" in o:
                a = np.frombuffer(blobs[o["__array__"]], dtype=np.dtype(o["dtype"])).reshape(o["shape"]).copy()
                return a if o["kind"] == "ndarray" else Opaque(o["kind"], "an ndarray subclass")
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
    def grad(o):
        if isinstance(o, torch.Tensor):
            return o.requires_grad_() if getattr(o, "grader_requires_grad", False) else o
        if isinstance(o, (tuple, list)):
            return type(o)(grad(x) for x in o)
        if isinstance(o, dict):
            return {k: grad(v) for k, v in o.items()}
        return o
    return grad(decode(data))
