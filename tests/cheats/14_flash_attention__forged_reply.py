# attack: write a forged reply frame (work counters at zero) into the reply pipe before the real one, then do the work on the full matrix
# layer: wire (every frame carries a per-child secret token; a frame without it is tampering)
# expect: forged
import json
import math
import os
import struct

import torch


def _forge():
    meta = json.dumps({"__dict__": [["largest", 0], ["matmul_flops", 0]]}).encode()
    meta = struct.pack("<I", len(meta)) + meta + struct.pack("<I", 0)
    result = json.dumps(None).encode()
    result = struct.pack("<I", len(result)) + result + struct.pack("<I", 0)
    body = b"\x00" * 16 + b"R" + struct.pack("<I", len(meta)) + meta + result
    frame = struct.pack("<Q", len(body)) + body
    for fd in range(3, 32):
        try:
            os.write(fd, frame)
        except OSError:
            pass


def flash_attention(q, k, v, causal=False, scale=None, block_size=64):
    _forge()
    s = (1.0 / math.sqrt(q.shape[-1])) if scale is None else scale
    scores = (q.float() @ k.float().transpose(-2, -1)) * s
    L, S = scores.shape[-2:]
    if causal:
        blocked = torch.ones(L, S, dtype=torch.bool, device=q.device).triu(S - L + 1)
        scores = scores.masked_fill(blocked, float("-inf"))
    lse = torch.logaddexp(scores, scores).amax(-1)
    m = scores.amax(-1, keepdim=True).nan_to_num(0.0, neginf=0.0)
    e = (scores - m).exp()
    out = (e @ v.float()) / e.sum(-1, keepdim=True).clamp_min(1e-30)
    return out.to(q.dtype), lse
