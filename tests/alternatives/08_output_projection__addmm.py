"""Step 8 with addmm on the flattened tokens, computed in float32 for half precision."""
import torch


def output_projection(x, w_o, b_o=None):
    B, L, D = x.shape
    wide = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    flat = x.reshape(B * L, D).to(wide)
    if b_o is None:
        out = flat @ w_o.to(wide).t()
    else:
        out = torch.addmm(b_o.to(wide), flat, w_o.to(wide).t())
    return out.reshape(B, L, -1).to(x.dtype)
