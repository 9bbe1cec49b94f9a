"""Checklist step 5: Stable softmax over the key axis.

softmax(x)_j = exp(x_j) / sum_k exp(x_k). In attention it runs over the key axis (the last one
of (..., L, S) scores): each query distributes its attention over the keys, so each query's row
sums to 1. Over the query axis instead, each key would share itself out among queries.

Stability: exp(1000) overflows to inf (float16 overflows already at exp(11.1)), and inf / inf is
NaN. Since softmax(x) = softmax(x - c) for any constant c, subtract the max along the axis:
every exponent is then <= 0, exp never overflows, and the largest term is exactly 1.

A slice whose entries are all -inf (a query with every key masked by -inf) has max -inf, and
-inf - (-inf) is NaN. Such a slice has no mass: return zeros there.

For float16/bfloat16 input, computing in float32 and casting back at the end is recommended:
exp and the sum lose a lot of precision in half precision.

Forbidden in this file: every library softmax, log-softmax and logsumexp (torch.softmax,
torch.nn.functional.softmax, Tensor.softmax, nn.Softmax, torch.special.*, torch.logsumexp, ...).

Forbidden in this file: NumPy (import torch and the standard library only): work done in NumPy
is hidden from the grader's checks, so a file that uses it scores 0, and the report says so.
"""
import torch


def softmax(x, dim=-1):
    """Numerically stable softmax of x along dim.

    Args:
        x: floating tensor of any shape, e.g. scores (B, H, L, S).
        dim: the axis to normalise along (the key axis, -1, for attention). Honour it.

    Returns:
        Same shape and dtype as x; sums to 1 along dim; a slice of all -inf gives zeros, not NaN.
        Must stay exact for float32/float64 inputs of magnitude up to 1e4 and float16 up to 6e4.

    Forbidden: torch.softmax, F.softmax, Tensor.softmax, nn.Softmax, log_softmax, logsumexp,
    torch.special.*.

    Steps (shapes for x (B, H, L, S), dim=-1; every reduction below runs along dim):
        work    (B, H, L, S)    x, converted to float32 when it is float16 or bfloat16
        m       (B, H, L, 1)    the max along dim, keeping the reduced axis so it broadcasts back
                                (`amax` with keepdim)
        m       (B, H, L, 1)    0 wherever m is -inf (an all -inf slice), since -inf - (-inf) is NaN
                                (`masked_fill`, or `torch.where`)
        e       (B, H, L, S)    exp of work minus m: every exponent <= 0, so nothing overflows
                                (`torch.exp`)
        total   (B, H, L, 1)    the sum of e along dim, keepdim; 0 only for all -inf slices
        total   (B, H, L, 1)    1 wherever total is 0, so such slices give 0 / 1 = 0, not 0 / 0 = NaN
        out     (B, H, L, S)    e divided by total, cast back to x's dtype (`.to`)
        return out
    """
    raise NotImplementedError("TODO: subtract the max along dim, exp, divide by the sum; all -inf -> 0")
