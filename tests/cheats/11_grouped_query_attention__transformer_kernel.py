# attack: a C++ kernel that does fused attention inside (torch._transformer_encoder_layer_fwd), below what a name watch sees
# layer: the watch's allow-list (the op itself is not elementary, whatever it calls inside) + static scan
# expect: transformer_encoder
# runtime: transformer_encoder
import torch


def grouped_query_attention(q, k, v, mask=None, scale=None):
    D = q.shape[-1]
    eye = torch.eye(D, dtype=q.dtype)
    x = q.reshape(-1, q.shape[-2], D)
    w = torch.cat([eye, eye, eye])
    z = torch.zeros(3 * D, dtype=q.dtype)
    zd = torch.zeros(D, dtype=q.dtype)
    out = torch._transformer_encoder_layer_fwd(x, D, 1, w, z, eye, zd, False, False, 1e-5, zd + 1, zd, zd + 1,
                                              zd, eye, zd, eye, zd)
    return out.reshape(q.shape)
