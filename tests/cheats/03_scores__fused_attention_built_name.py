# attack: the fused attention kernel (scaled_dot_product_attention) through getattr with a built-up name, results otherwise right
# layer: the watch (TorchFunctionMode and TorchDispatchMode) + static scan
# runtime: scaled_dot_product
import math

import torch

_fused = getattr(getattr(torch.nn, "func" + "tional"), "scaled_dot" + "_product_" + "attention")


def attention_scores(q, k, scale=None):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    _fused(q[..., :1, :].float(), k.float(), k.float())
    return q @ k.transpose(-2, -1) * scale
