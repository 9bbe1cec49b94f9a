"""Error shapes of attention, computed: which keys a wrong output really attended to.

When a result is attention over (q, k, v, mask), a test can give `close` an `Attending`: a callable
that recomputes the expected result with each key weighted per query (0: not seen, 1: seen once,
2: counted twice), and the keys the right answer lets each query see. When no catalogued mistake
matches, `close` tries a family of key weightings (the last key block dropped, one key block
dropped or counted twice, the diagonal blocked or one key past it seen, the causal skip stopping one
block early, the tiles that cross the diagonal left unmasked), for every block size that fits, and names the first that reproduces the
learner's output: "your output equals attention with the last key block (keys 8..11) dropped".
"""
from dataclasses import dataclass
from typing import Callable, Optional

import torch

LARGEST = 128        # beyond this many queries or keys, the search is skipped (it recomputes attention per shape)
TILE_SIZES = 16      # tile sizes tried for the diagonal tiles, besides the one the test names


@dataclass
class Attending:
    """What `close` needs to recompute attention under other key weights.

    attend: weights (..., L, S) float64 -> the expected result (the same part, the same shape) when
        query i counts key j weights[..., i, j] times; `attention_with_key_weights` computes it.
    seen: (..., L, S) bool, True where the right answer lets query i see key j.
    block_size: the tile size of a tiled exercise, tried first (others are tried too).
    """
    attend: Callable
    seen: torch.Tensor
    block_size: Optional[int] = None


@dataclass
class Shape:
    key: str        # travels like a catalogued mistake's key (tests[].mistake, hints' `## when:`)
    text: str       # completes "your output equals attention with ..."
    fix: str


# The keys a computed shape can carry, with the fix the report gives for each.
FIXES = {
    "last_key_block_dropped": "Visit every key, the last (possibly short) block included: range(0, S, block_size), "
                              "and slicing stops at S by itself.",
    "key_block_dropped": "Every key block must reach the sum: check the loop's range and step.",
    "key_block_counted_twice": "Each key block must be added once: check the loop's range, and that a block is "
                               "not added both inside and after the loop.",
    "diagonal_blocked": "A query sees its own position: block key j only when j > i + (S − L), not j >= ...",
    "one_key_past_diagonal": "Query i sees keys j <= i + (S − L) and no further: block where j > i + (S − L).",
    "diagonal_tile_unmasked": "A key tile [k0, k1) needs the causal mask as soon as its last key k1 − 1 lies past "
                              "the diagonal of the tile's first query: k1 − 1 > q0 + (S − L), with no slack.",
    "crossing_tiles_unmasked": "Inside a key tile that crosses the diagonal, block key j for query i where "
                               "j > i + (S − L), with i and j absolute positions (q0 + row, k0 + column), not "
                               "positions within the tile; and mask every tile whose last key k1 − 1 lies past "
                               "q0 + (S − L).",
    "causal_skip_one_block_early": "Under causal, the query block [q0, q1) sees keys up to its last query's "
                                   "diagonal, q1 − 1 + (S − L): visit key blocks while k0 < min(S, q1 + (S − L)) "
                                   "(q1, not q0; no block subtracted).",
    # not an attention shape: a float64 result right only to float32's precision (diagnosis.float32_path)
    "computed_in_float32": "Keep float64 inputs in float64 throughout: no .float(), no float32 constants; cast "
                           "only half precision up, and back.",
}
KEYS = tuple(FIXES)


def attention_with_key_weights(q, k, v, weights, scale=None):
    """Attention in float64 where query i counts key j weights[..., i, j] times; a query that counts no key
    gives 0. PyTorch's own attention, with log(weights) added to the scores."""
    q, k, v, weights = (torch.as_tensor(t).to(torch.float64) for t in (q, k, v, weights))
    bias = torch.log(weights)                                     # log 0 = -inf: not seen
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias.expand(
        *q.shape[:-2], q.shape[-2], k.shape[-2]), scale=scale)
    return torch.nan_to_num(out.masked_fill(~(weights > 0).any(-1, keepdim=True), 0.0), nan=0.0)


def find(attending, matches):
    """The first Shape whose recomputed result `matches(result, rows)` says is the learner's on the rows
    (broadcastable to the result) where a query counts some key, or None."""
    seen = torch.as_tensor(attending.seen, dtype=torch.bool)
    L, S = seen.shape[-2:]
    if L > LARGEST or S > LARGEST:
        return None
    base = seen.to(torch.float64)
    tried = set()
    for weights, shape in _candidates(seen, attending.block_size):
        if torch.equal(weights, base):
            continue
        memo = weights.numpy().tobytes()
        if memo in tried:
            continue
        tried.add(memo)
        # A query that counts no key under the candidate has no answer to compare (0, uniform, ...): left out.
        counted = (weights > 0).any(-1)
        skip = shape.key == "causal_skip_one_block_early"
        if counted.float().mean() < 0.5:
            continue
        try:
            result, rows = attending.attend(weights), counted[..., None]
            if skip:    # whole query blocks see nothing: their rows must then be what such a row gives, 0
                result = torch.where(rows, result, torch.zeros((), dtype=result.dtype))
                rows = torch.ones_like(rows)
            if matches(result, rows):
                return shape
        except Exception:       # a diagnosis must never break the check it explains
            continue
    return None


def _candidates(seen, block_size):
    """(weights, Shape) pairs, the most specific first: the diagonal, then tails and tiles, then blocks."""
    L, S = seen.shape[-2:]
    base = seen.to(torch.float64)
    offset = _causal_offset(seen)
    i = torch.arange(L)[:, None]
    j = torch.arange(S)[None, :]
    if offset is not None:
        yield base.masked_fill(j == i + offset, 0.0), Shape(
            "diagonal_blocked", f"the diagonal blocked (query i does not see key {_plus(offset)}, its own position)",
            FIXES["diagonal_blocked"])
        yield torch.where(j <= i + offset + 1, 1.0, 0.0).expand_as(base), Shape(
            "one_key_past_diagonal", f"one key past the diagonal seen (query i sees key {_plus(offset + 1)} too)",
            FIXES["one_key_past_diagonal"])
    sizes = _sizes(block_size, max(L, S))
    if offset is not None:
        # Before the tails: with two query blocks or more, a skip that stops early drops other keys for each
        # block, which no tail explains; with one, the two cannot be told apart and the tail is named.
        for b in [b for b in sizes[:TILE_SIZES] if b < L]:
            for early in ("q0", "block"):
                yield _tiles_unmasked(L, S, offset, b, 0, stop=early).expand_as(base), Shape(
                    "causal_skip_one_block_early",
                    f"the key block on each query block's diagonal never visited (blocks of {b}: the causal skip "
                    "stopped one block early)",
                    FIXES["causal_skip_one_block_early"])
    for tail in range(1, S):
        yield base.masked_fill(j >= S - tail, 0.0), Shape(
            "last_key_block_dropped", f"the last key block (keys {S - tail}..{S - 1}) dropped",
            FIXES["last_key_block_dropped"])
    if offset is not None:
        for b in sizes[:TILE_SIZES]:
            # Every crossing tile unmasked, before the slack family: where the observation cannot tell a
            # slack from a mask that hides nothing, it is said as seen, not with a slack it does not show.
            yield _tiles_unmasked(L, S, offset, b, None).expand_as(base), Shape(
                "crossing_tiles_unmasked",
                f"every key tile that crosses the diagonal left unmasked (tiles of {b}: the keys of each tile "
                "computed were all seen, those past the diagonal too)",
                FIXES["crossing_tiles_unmasked"])
            for slack in range(1, b):
                yield _tiles_unmasked(L, S, offset, b, slack).expand_as(base), Shape(
                    "diagonal_tile_unmasked",
                    f"the key tiles that cross the diagonal left unmasked (tiles of {b}; a tile was masked only "
                    f"when its last key lay more than {slack} past the diagonal of its first query)",
                    FIXES["diagonal_tile_unmasked"])
    for b in sizes:
        for k0 in range(0, S, b):
            k1 = min(k0 + b, S)
            block = (j >= k0) & (j < k1)
            keys = f"keys {k0}..{k1 - 1}" if k1 - k0 > 1 else f"key {k0}"
            if k1 < S:
                yield base.masked_fill(block, 0.0), Shape(
                    "key_block_dropped", f"{keys} dropped (one key block of {b} skipped)", FIXES["key_block_dropped"])
            yield torch.where(block, 2 * base, base), Shape(
                "key_block_counted_twice", f"the keys of one block ({keys}) counted twice",
                FIXES["key_block_counted_twice"])


def _plus(offset):
    """"i + 3", "i − 2" or "i": the key on query i's diagonal, shifted."""
    return "i" if offset == 0 else f"i + {offset}" if offset > 0 else f"i − {-offset}"


def _sizes(block_size, largest):
    """Block sizes to try: the test's own first, then every other that fits."""
    sizes = [block_size] if block_size and 1 <= block_size <= largest else []
    return sizes + [b for b in range(1, largest + 1) if b != block_size]


def _causal_offset(seen):
    """S − L when `seen` is the bottom-right causal pattern (the same for every batch item and head)."""
    L, S = seen.shape[-2:]
    flat = seen.reshape(-1, L, S)
    if not bool((flat == flat[:1]).all()):
        return None
    offset = int(flat[0, -1].sum()) - L
    pattern = torch.ones(L, S, dtype=torch.bool).tril(offset)
    return offset if torch.equal(flat[0], pattern) and not bool(pattern.all()) else None


def _tiles_unmasked(L, S, offset, b, slack, stop="q1"):
    """(L, S) weights of a tiled causal pass that skips the tiles past the diagonal but masks a tile that
    crosses it only when its last key lies more than `slack` past the diagonal of its first query (None:
    never). stop: where the skip stops, "q1" (right: q1 + offset), "q0" (q0 + offset) or "block"
    (q1 + offset − b)."""
    weights = torch.zeros(L, S, dtype=torch.float64)
    for q0 in range(0, L, b):
        q1 = min(q0 + b, L)
        k_stop = {"q1": q1 + offset, "q0": q0 + offset, "block": q1 + offset - b}[stop]
        for k0 in range(0, max(min(S, k_stop), 0), b):
            k1 = min(k0 + b, S)
            tile = torch.ones(q1 - q0, k1 - k0, dtype=torch.float64)
            if slack is not None and k1 - 1 > q0 + offset + slack:
                i = torch.arange(q0, q1)[:, None]
                jj = torch.arange(k0, k1)[None, :]
                tile = torch.where(jj > i + offset, 0.0, 1.0)
            weights[q0:q1, k0:k1] = tile
    return weights


def described(shape):
    """The lines `close` adds for a shape found."""
    return [f"Shape of the error: your output equals attention with {shape.text}.", shape.fix]

