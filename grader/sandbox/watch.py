"""What a submission reaches while it runs: the operations it dispatches, and the work they do.

Runs inside the sandbox, in the submission's own process (imports only torch), and is also
used by the grader to name helpers when it reads the source (guards.py). A finding is sent
to the grader the moment it is made (see inside.py), so code that runs later cannot take it
back.

The rule is an allow-list: every aten operation that really runs must be an elementary one
(ELEMENTARY), minus what the exercise forbids. Whatever else runs (a private `_` kernel, a fused
or masked softmax, a scan, a composite attention kernel, a custom operator from torch.library,
anything outside the aten namespace) is a finding and is refused before it runs. The deny-list
below only names a helper in the message. Work and memory are counted here too, at the aten
level, where every route to an operation passes and nothing of the submission's namespace is
consulted.
"""
import functools

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# Fused attention, forbidden in every exercise: matched as a part of a name (to name it).
FUSED_ATTENTION = ("scaled_dot_product", "multi_head_attention", "multiheadattention",
                   "fused_sdp", "native_multi_head", "safe_softmax", "transformer_encoder", "transformer_decoder",
                   "flash_attention", "efficient_attention", "cudnn_attention", "masked_softmax")

# Names a test module may forbid in addition (module attribute FORBIDDEN), matched in full
# after dropping leading underscores and a "special_" prefix, so `softmax` also catches
# `torch.special.softmax`, `aten._softmax` and `Tensor.softmax`.
SOFTMAX_FAMILY = ("softmax", "log_softmax", "logsumexp", "Softmax", "LogSoftmax")
LINEAR_LAYER = ("linear", "Linear")

# Every aten operation an exercise needs, by every elementary route: products (matmul, einsum,
# baddbmm, addmm and what they decompose into), elementwise arithmetic and comparisons, exp/log
# in any base, reductions, views and indexing, creation and copies, complex numbers (RoPE), and
# the library softmax where the exercise allows it. In-place and out= variants count as their op.
ELEMENTARY = frozenset("""
    mm bmm addmm baddbmm addbmm dot vdot mv addmv addr outer ger matmul einsum tensordot inner
    add sub rsub mul div true_divide floor_divide remainder fmod neg negative reciprocal sqrt rsqrt square pow
    float_power exp exp2 expm1 log log2 log10 log1p logaddexp logaddexp2 xlogy sigmoid tanh
    abs absolute sign sgn signbit floor ceil round trunc fix frac clamp clamp_min clamp_max clip maximum minimum
    fmax fmin max min amax amin lerp addcmul addcdiv hypot copysign nextafter
    sin cos tan sinh cosh asin acos atan atan2 arctan2 deg2rad rad2deg
    eq ne lt le gt ge equal isclose allclose isnan isinf isposinf isneginf isfinite isreal
    logical_and logical_or logical_not logical_xor bitwise_and bitwise_or bitwise_not bitwise_xor
    __and__ __or__ __xor__ __invert__ __iand__ __ior__ __ixor__
    where masked_fill masked_scatter nan_to_num fill zero zeros ones full empty
    sum nansum mean prod argmax argmin any all count_nonzero norm linalg_vector_norm var std var_mean std_mean
    view view_as reshape _reshape_alias _unsafe_view alias permute transpose t swapaxes swapdims movedim moveaxis
    unsqueeze squeeze expand expand_as flatten unflatten contiguous clone detach split split_with_sizes
    tensor_split chunk unbind select slice narrow index index_select gather take_along_dim diagonal diag
    diag_embed flip fliplr flipud roll repeat repeat_interleave tile cat concat concatenate stack hstack
    vstack triu tril as_strided unfold _unsafe_index index_put _index_put_impl scatter scatter_add masked_select
    nonzero constant_pad_nd pad
    empty_like empty_strided zeros_like ones_like full_like arange linspace scalar_tensor
    new_empty new_empty_strided new_zeros new_ones new_full new_tensor eye lift_fresh lift_fresh_copy
    _to_copy to copy _local_scalar_dense item type_as _has_compatible_shallow_copy_type promote_types result_type
    can_cast is_nonzero is_same_size sym_size sym_numel sym_stride sym_storage_offset
    view_as_complex view_as_real polar complex real imag conj _conj conj_physical resolve_conj resolve_neg
    _neg_view angle
    uniform normal bernoulli random randn rand randint randperm
    softmax _softmax log_softmax _log_softmax logsumexp
""".split())


def _bare(name):
    name = name.lstrip("_")
    return name.removeprefix("special_").lstrip("_")


def is_forbidden(name, extra):
    """The forbidden helper that `name` (a function, op or attribute name) reaches, or None."""
    fused, bare, bare_lower = _name_facts(name)
    if fused or bare in extra or bare_lower in _lowered(tuple(extra)):
        return name
    return None


@functools.lru_cache(maxsize=1 << 14)
def _name_facts(name):
    """(whether it names fused attention, its bare name, lowered): the zygote learns torch's own
    names once (inside.py), and every child asks again for thousands of them."""
    low = name.lower().replace("torch.", "").replace(".", "_")
    bare = _bare(name.split(".")[-1] if not name.startswith("aten.") else name.split(".")[1])
    return any(part in low for part in FUSED_ATTENTION), bare, bare.lower()


@functools.lru_cache(maxsize=64)
def _lowered(extra):
    return frozenset(e.lower() for e in extra)


def op_name(func):
    """(namespace, name) of an aten OpOverload, an in-place op (`add_`) named as its op (`add`)."""
    namespace = getattr(func, "namespace", "?")
    packet = getattr(getattr(func, "overloadpacket", None), "__name__", str(func))
    if packet.endswith("_") and not packet.endswith("__"):
        packet = packet[:-1]
    return namespace, packet


def elementary(func, extra):
    """None when `func` (an aten op as dispatched) is allowed in an exercise forbidding `extra`,
    else the finding that names it."""
    namespace, name = op_name(func)
    named = is_forbidden(f"{namespace}.{name}", extra)
    if named:
        return named
    if namespace != "aten":
        return f"{namespace}.{name} (a custom or non-aten operator: write the exercise with tensor operations)"
    if name not in ELEMENTARY:
        return (f"aten.{name} (not an elementary tensor operation: write it with matmul, elementwise "
                "arithmetic, exp/log, reductions and indexing)")
    return None


MATMULS = frozenset(("mm", "bmm", "dot", "vdot", "mv", "addmm", "baddbmm", "addbmm", "addmv", "addr"))


def _verdict(func, watch):
    """(finding or None, op name, positions of the outputs that are views of an input) for one op."""
    _, name = op_name(func)
    if watch.numpy_only:
        why = "torch (this exercise is NumPy only): " + str(func)
    else:
        why = elementary(func, watch.extra)
    returns = func._schema.returns
    return why, name, frozenset(i for i, r in enumerate(returns) if r.alias_info is not None)


def _matmul_flops(name, args, out):
    """2·(output elements)·(inner size) for a matrix product as dispatched; 0 for anything else."""
    a = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if name in ("addmm", "baddbmm", "addbmm", "addmv", "addr") and len(args) >= 3 and isinstance(args[1], torch.Tensor):
        a = args[1]
    elif name not in ("mm", "bmm", "dot", "vdot", "mv"):
        return 0
    if a is None or a.dim() == 0:
        return 0
    return 2 * max(out.numel(), 1) * a.shape[-1]


class Watch:
    """Runs in the submission's process around every call: what runs, and the work it does.

    extra: names this exercise forbids besides fused attention; numpy_only: any torch op is a
    finding (exercise 15); no_numpy: a tensor handed to NumPy is a finding (exercises in
    PyTorch, where NumPy would hide work from this watch). report(text) sends a finding out.
    """

    def __init__(self, extra, numpy_only=False, no_numpy=False, report=None):
        self.extra = tuple(extra) + (("numpy", "__array__", "from_numpy") if no_numpy else ())
        self.numpy_only = numpy_only
        self.forbidden = []
        self.report = report
        self.reset()

    def reset(self):
        self.largest = 0          # elements in the largest tensor an op allocated (views aside)
        self.matmul_flops = 0     # 2·m·n·k summed over every matrix product
        self.work = 0             # matmul flops plus the elements every other op produced
        self.ops = 0              # aten operations dispatched

    def note(self, what):
        if what not in self.forbidden:
            self.forbidden.append(what)
            if self.report:
                self.report(what)

    def note_name(self, name):
        hit = "torch (this exercise is NumPy only): " + name if self.numpy_only else is_forbidden(name, self.extra)
        if hit:
            self.note(hit)

    def mode(self):
        """Two watchers, entered together around the submission's code.

        A TorchFunctionMode names a forbidden helper by the name the learner used (F.linear
        decomposes before dispatch, so only this level sees it). A TorchDispatchMode sees every
        aten op that really runs, also where Python-level handling was switched off or the op
        runs below Python (TorchScript): it refuses what is not elementary and counts the work.
        """
        watch = self
        state = {"inside": 0}
        named, ops = {}, {}    # verdicts by function name and by op: a model's forward repeats a few ops

        class Functions(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                name = getattr(func, "__name__", "") or str(func)
                if name not in named:
                    named[name] = None
                    watch.note_name(name)
                state["inside"] += 1
                try:
                    return func(*args, **(kwargs or {}))
                finally:
                    state["inside"] -= 1

        class Ops(TorchDispatchMode):
            @classmethod
            def _should_skip_dynamo(cls):      # (else its first use imports torch._dynamo: seconds)
                return False

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                known = ops.get(func)
                if known is None:
                    known = ops[func] = _verdict(func, watch)
                why, name, views = known
                if why:
                    watch.note(why)
                    raise RuntimeError("this exercise is NumPy only" if watch.numpy_only else
                                       f"the grader does not allow {why.split(' (')[0]} here")
                if not state["inside"] and not torch._C._is_torch_function_enabled():
                    watch.note("torch._C.DisableTorchFunction (hides calls from the grader)")
                out = func(*args, **(kwargs or {}))
                watch.ops += 1
                flops = _matmul_flops(name, args, out) if name in MATMULS and isinstance(out, torch.Tensor) else 0
                watch.matmul_flops += flops
                for i, t in enumerate(out if isinstance(out, (tuple, list)) else (out,)):
                    if isinstance(t, torch.Tensor):
                        if not flops:
                            watch.work += t.numel()
                        if i not in views:
                            watch.largest = max(watch.largest, t.numel())
                watch.work += flops
                return out

        return _Together(Ops(), Functions())


class _Together:
    """Enters several context managers as one (reusable)."""

    def __init__(self, *managers):
        self.managers = managers

    def __enter__(self):
        for m in self.managers:
            m.__enter__()
        return self

    def __exit__(self, *exc):
        for m in reversed(self.managers):
            m.__exit__(*exc)
        return False
