# attack: PyTorch's own multi-head attention (F.multi_head_attention_forward, all elementary ops inside) renamed to `mm` so the function watch would not name it
# layer: the watch names torch's functions by identity (learnt by the zygote), never by __name__ + static scan
# expect: multi_head_attention
# runtime: multi_head_attention_forward
import torch
from torch import nn

_mha = nn.functional.multi_head_attention_forward
_mha.__name__ = "mm"


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads, bias=True):
        super().__init__()
        if num_heads <= 0 or d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, query, key=None, value=None, key_padding_mask=None, attn_mask=None,
                is_causal=False, need_weights=False):
        key = query if key is None else key
        value = key if value is None else value
        w = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
        b = None if self.q_proj.bias is None else torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
        out, weights = _mha(query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1), query.shape[-1],
                            self.num_heads, w, b, None, None, False, 0.0, self.out_proj.weight, self.out_proj.bias,
                            training=False, key_padding_mask=key_padding_mask, need_weights=True,
                            attn_mask=attn_mask, average_attn_weights=False)
        out = out.transpose(0, 1)
        return (out, weights) if need_weights else out
