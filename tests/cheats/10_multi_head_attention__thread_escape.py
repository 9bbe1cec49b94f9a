# attack: call the fused attention kernel from a thread, where the run-time watch does not look
# layer: seccomp (no clone: no thread starts) + the harness refuses thread starts and names them
# expect: thread
# runtime: thread
import threading

import torch
from torch import nn

_box = {}


def _fused(q, k, v):
    _box["out"] = torch.ops.aten.matmul(q, k.transpose(-2, -1))


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, bias=True):
        super().__init__()
        if d_model % num_heads:
            raise ValueError("d_model % num_heads != 0")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, query, key=None, value=None, key_padding_mask=None, attn_mask=None, is_causal=False,
                need_weights=False):
        t = threading.Thread(target=_fused, args=(query, query, query))
        t.start()
        t.join()
        return _box["out"]
