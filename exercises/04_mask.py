"""Checklist step 4: Mask before softmax.

In this course masks are bool and True means blocked: that key is not attended to (the
convention of scores.masked_fill(mask, ...) and of nn.MultiheadAttention;
F.scaled_dot_product_attention's bool mask means the opposite, see exercises/conventions.md).
Two kinds:

- causal: a query may not look at later keys. Query i may see itself, so the diagonal stays
  open. When there are more keys than queries (S > L, decoding with a KV cache), the L queries
  are the last L positions: the mask is aligned bottom-right, key j is blocked when
  j > i + (S - L), and the last query sees every key.
- padding: sequences of different lengths share a batch; keys past a sequence's length are
  padding and must be hidden (keys, not queries).

Why before the softmax: a blocked score set to a hugely negative number becomes exactly 0 after
exp, and the row is normalised over the keys that remain. Zeroing probabilities after the
softmax leaves rows that no longer sum to 1.

Why torch.finfo(dtype).min and not -inf: if every key of a row is blocked, a row of -inf gives
-inf - (-inf) = NaN in the softmax, in every dtype. The most negative finite value keeps the
row finite (its keys then share the weight uniformly). Filling with 0 is wrong: 0 is an ordinary score.

Forbidden in this file: NumPy (import torch and the standard library only): work done in NumPy
is hidden from the grader's checks, so a file that uses it scores 0, and the report says so.
"""
import torch


def causal_mask(L, S=None, device=None):
    """Causal mask, aligned bottom-right.

    Args:
        L: number of queries.
        S: number of keys; None means S = L.
        device: where to create the mask (None: the default device).

    Returns:
        bool (L, S), True where key j > i + (S - L) (blocked), False elsewhere.

    Steps (S defaults to L when None):
        i       (L, 1)          query positions 0 .. L-1 as a column (`torch.arange` on `device`, then
                                a new axis with `None` indexing)
        j       (1, S)          key positions 0 .. S-1 as a row
        mask    (L, S) bool     comparing the row of keys against the column of queries, each query
                                shifted by the (S - L) extra keys, broadcasts to every (i, j) pair; True
                                where key j is in query i's future (`torch.triu` of a bool ones matrix
                                with a diagonal offset is another route)
        return mask
    """
    raise NotImplementedError("TODO: build the bool (L, S) causal mask, aligned bottom-right")


def padding_mask(lengths, S):
    """Padding mask over keys, shaped to broadcast against (B, H, L, S) scores.

    Args:
        lengths: a list of B ints or a 1-D integer tensor (B,): the real length of each sequence.
        S: the padded key length.

    Returns:
        bool (B, 1, 1, S), True where key j >= lengths[b] (padding).

    Steps (B sequences):
        lengths (B,)            the lengths as an integer tensor (`torch.as_tensor` takes a list or a
                                tensor)
        j       (S,)            key positions 0 .. S-1, on lengths' device
        mask    (B, S) bool     every key position against every sequence's length (positions as a row,
                                lengths as a column, broadcast): True at and past the length
        mask    (B, 1, 1, S)    two singleton axes inserted, for heads and queries (`None` indexing or
                                `view`), so the mask hides these keys from every head and every query
        return mask
    """
    raise NotImplementedError("TODO: build the bool (B, 1, 1, S) mask of padded keys")


def apply_mask(scores, mask):
    """Fill the blocked scores with the dtype's most negative finite value.

    Args:
        scores: (..., L, S) floating tensor.
        mask: bool, broadcastable to scores' shape; True = blocked.

    Returns:
        A NEW tensor of scores' shape and dtype: scores where mask is False,
        torch.finfo(scores.dtype).min where it is True. Do not modify scores in place
        (masked_fill, not masked_fill_).

    Steps (scores (..., L, S), mask broadcastable to it):
        fill    scalar          the most negative finite value of scores' dtype (`torch.finfo(dtype).min`),
                                finite unlike -inf
        out     (..., L, S)     a copy of scores holding fill wherever the mask is True (`masked_fill`,
                                the out-of-place one, without the trailing underscore)
        return out
    """
    raise NotImplementedError("TODO: a new tensor with blocked scores set to the most negative finite value")
