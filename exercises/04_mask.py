"""Checklist step 4: Mask before softmax.

Masks are bool and True means blocked: that key is not attended to (the convention of
scores.masked_fill(mask, ...)). Two kinds:

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
-inf - (-inf) = NaN in the softmax, and in float16 NaN spreads. The most negative finite value
keeps the row finite. Filling with 0 is wrong: 0 is an ordinary score.
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

    Steps:
        # S = L when S is None
        i = torch.arange(L, device=device)[:, None]    # (L, 1) query positions
        j = torch.arange(S, device=device)[None, :]    # (1, S) key positions
        mask = j > i + (S - L)                         # (L, 1) vs (1, S) -> (L, S) bool
        return mask
    """
    raise NotImplementedError("TODO: return the bool (L, S) mask j > i + (S - L)")


def padding_mask(lengths, S):
    """Padding mask over keys, shaped to broadcast against (B, H, L, S) scores.

    Args:
        lengths: a list of B ints or a 1-D integer tensor (B,): the real length of each sequence.
        S: the padded key length.

    Returns:
        bool (B, 1, 1, S), True where key j >= lengths[b] (padding).

    Steps:
        lengths = torch.as_tensor(lengths)            # (B,)
        j = torch.arange(S, device=lengths.device)    # (S,)
        mask = j[None, :] >= lengths[:, None]         # (1, S) vs (B, 1) -> (B, S)
        return mask[:, None, None, :]                 # (B, S) -> (B, 1, 1, S): every head, every query
    """
    raise NotImplementedError("TODO: return the bool (B, 1, 1, S) mask j >= lengths[b]")


def apply_mask(scores, mask):
    """Fill the blocked scores with the dtype's most negative finite value.

    Args:
        scores: (..., L, S) floating tensor.
        mask: bool, broadcastable to scores' shape; True = blocked.

    Returns:
        A NEW tensor of scores' shape and dtype: scores where mask is False,
        torch.finfo(scores.dtype).min where it is True. Do not modify scores in place
        (masked_fill, not masked_fill_).

    Steps:
        fill = torch.finfo(scores.dtype).min         # finite, unlike -inf
        out = scores.masked_fill(mask, fill)         # (..., L, S), a copy
        return out
    """
    raise NotImplementedError("TODO: return scores.masked_fill(mask, torch.finfo(scores.dtype).min)")
