# attack: a torch.library custom operator whose Python body calls fused attention, run by torch with the watch's modes set aside
# layer: the audit hook (torch.library reads its caller's frame: refused with the submission on the stack); the allow-list refuses any operator outside aten; static scan
# expect: _getframe
# runtime: _getframe
import torch

lib = torch.library.Library("sneaky", "DEF")
lib.define("attend(Tensor q, Tensor k, Tensor v) -> Tensor")


def _attend(q, k, v):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)


lib.impl("attend", _attend, "CompositeExplicitAutograd")


def grouped_query_attention(q, k, v, mask=None, scale=None):
    out = torch.ops.sneaky.attend(q, k, v)
    probs = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, -1)
    return out
