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
import builtins
import functools

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# While a watch's handler runs, torch has set that watch aside: nothing of the submission's may run
# then. So the watch looks no name up where the submission can change it: its builtins are a copy
# taken when the zygote imported it, and what it calls of torch's is captured here. (No finaliser
# runs there either: in the sandbox the collector runs only at the harness's call, inside.py.)
__builtins__ = dict(vars(builtins))
_Tensor = torch.Tensor
_torch_function_enabled = torch._C._is_torch_function_enabled

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


# -- what torch's own operators and functions are, learnt before any submission runs ------------------
# An operator's and a function's names are plain attributes a submission can rewrite (an
# OpOverload's __name__, _name and packet, a Python function's __name__). What they are is not:
# the C++ operation an OpOverload runs, and the function object itself. The zygote learns both
# (learn()) before any submission runs; the watch names an op by the operation it will run, runs
# exactly that, and refuses an op whose operation it did not learn.
_OPERATIONS = {}   # id(C++ operation) -> (operation, qualified name, packet name, outputs that are views)
_FUNCTIONS = {}    # id(torch function) -> (function, its name)
_OpOverload = torch._ops.OpOverload
_instance_dict = next(c.__dict__["__dict__"] for c in _OpOverload.__mro__ if "__dict__" in c.__dict__).__get__


_type_mro = type.__dict__["__mro__"].__get__
_type_dict = type.__dict__["__dict__"].__get__
_type_name = type.__dict__["__name__"].__get__
# torch's own __torch_function__ (Tensor's, and the one that switches it off, as nn.Parameter uses)
_TORCH_HANDLERS = (torch.Tensor.__dict__["__torch_function__"], torch._C._disabled_torch_function_impl)


def _torch_handles(cls):
    """Whether torch's own __torch_function__ serves a tensor type (a subclass of the submission's
    may keep it: what runs then is torch's; one of its own would run with the watch set aside)."""
    for c in _type_mro(cls):
        space = _type_dict(c)
        if "__torch_function__" in space:
            return any(space["__torch_function__"] is h for h in _TORCH_HANDLERS)
    return True


def _packet_base(name):
    """An in-place op (`add_`) is named as its op (`add`)."""
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def learn():
    """Learns, once, every aten operator with an elementary name and every function of torch's
    public namespaces (about 10 ms). The zygote calls it before it forks any child."""
    if _OPERATIONS:
        return
    if hasattr(torch._C, "_dispatch_get_all_op_names"):
        names = torch._C._dispatch_get_all_op_names()
    else:       # an older torch (TORCH=system)
        names = [s.name + (f".{s.overload_name}" if s.overload_name else "") for s in torch._C._jit_get_all_schemas()]
    for qualified in names:
        namespace, _, rest = qualified.partition("::")
        name, _, overload = rest.partition(".")
        if namespace != "aten" or _packet_base(name) not in ELEMENTARY:
            continue
        try:
            op = getattr(getattr(torch.ops.aten, name), overload or "default")
        except (AttributeError, RuntimeError):      # a schema with no operator behind it
            continue
        run = _instance_dict(op)["_op"]
        views = frozenset(i for i, r in enumerate(op._schema.returns) if r.alias_info is not None)
        _OPERATIONS[id(run)] = (run, f"aten.{name}.{overload or 'default'}", _packet_base(name), views)
    spaces = [torch, torch.nn.functional, torch.functional, torch.linalg, torch.special, torch.fft, torch._C._nn,
              torch._C._linalg, torch._C._special, torch._C._fft, torch.Tensor, torch._C.TensorBase,
              type(torch._C._VariableFunctions)]
    for space in [vars(s) for s in spaces]:
        for attr, value in list(space.items()):
            name = getattr(value, "__name__", None) if callable(value) else None
            if name is not None and id(value) not in _FUNCTIONS:
                _FUNCTIONS[id(value)] = (value, name if type(name) is str else attr)


def operation(func):
    """The C++ operation an op as dispatched (an OpOverload) runs, read without running any of its
    Python; None for anything else."""
    if type(func) is not _OpOverload:
        return None
    return _instance_dict(func).get("_op")


def claimed_name(func):
    """What an op says it is (for a message only: it may be rewritten)."""
    try:
        name = _instance_dict(func).get("_name") if type(func) is _OpOverload else None
    except Exception:
        name = None
    return name.replace("::", ".") if type(name) is str else type(func).__name__


def function_name(func):
    """A function's name as the torch function watch reports it: torch's own by identity, else
    what the object calls itself (its own code runs then, watched at dispatch)."""
    known = _FUNCTIONS.get(id(func))
    if known is not None and known[0] is func:
        return known[1]
    run = operation(func)
    if run is not None and id(run) in _OPERATIONS:
        return _OPERATIONS[id(run)][1]
    name = getattr(func, "__name__", "")
    return name if type(name) is str and name else claimed_name(func)


def verdict(func, extra, numpy_only=False):
    """(finding or None, op name, outputs that are views) for an op as dispatched, by the operation
    it runs: an operation not learnt is refused, named by what it claims to be."""
    run = operation(func)
    known = _OPERATIONS.get(id(run)) if run is not None else None
    if known is None or known[0] is not run:
        claimed = claimed_name(func)
        base = _packet_base(claimed.split(".")[1]) if claimed.startswith("aten.") and "." in claimed else ""
        if numpy_only:
            return f"torch (this exercise is NumPy only): {claimed}", "", frozenset()
        named = is_forbidden(claimed, extra)
        if named:
            return named, "", frozenset()
        if base in ELEMENTARY:
            return f"{claimed} (an operator that calls itself that but runs something else: tampering)", "", \
                frozenset()
        if not claimed.startswith("aten."):
            return f"{claimed} (a custom or non-aten operator: write the exercise with tensor operations)", "", \
                frozenset()
        return (f"{claimed} (not an elementary tensor operation: write it with matmul, elementwise "
                "arithmetic, exp/log, reductions and indexing)"), "", frozenset()
    _, qualified, name, views = known
    if numpy_only:
        return f"torch (this exercise is NumPy only): {qualified}", name, views
    return is_forbidden(f"aten.{name}", extra), name, views


def elementary(func, extra):
    """None when `func` (an aten op as dispatched) is allowed in an exercise forbidding `extra`,
    else the finding that names it."""
    learn()
    return verdict(func, extra)[0]


MATMULS = frozenset(("mm", "bmm", "dot", "vdot", "mv", "addmm", "baddbmm", "addbmm", "addmv", "addr"))


def _matmul_flops(name, args, out):
    """2·(output elements)·(inner size) for a matrix product as dispatched; 0 for anything else."""
    a = args[0] if args and isinstance(args[0], _Tensor) else None
    if name in ("addmm", "baddbmm", "addbmm", "addmv", "addr") and len(args) >= 3 and isinstance(args[1], _Tensor):
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
        learn()     # in the sandbox the zygote learnt already, before any submission ran
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
        named, ops = {}, {}    # verdicts by function name and by operation: a model's forward repeats a few ops

        class Functions(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                for t in types:
                    if not _torch_handles(t):
                        why = (f"a tensor subclass with its own __torch_function__ ({_type_name(t)}): it would run "
                               "where the grader cannot watch (tampering)")
                        watch.note(why)
                        raise RuntimeError(f"the grader does not allow {why.split(' (')[0]} here")
                name = function_name(func)
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
                if types:       # a tensor that takes part in dispatch: its handler would run below the watch
                    why = (f"a tensor subclass with its own __torch_dispatch__ ({_type_name(types[0])}): it would run "
                           "where the grader cannot watch (tampering)")
                    watch.note(why)
                    raise RuntimeError(f"the grader does not allow {why.split(' (')[0]} here")
                run = operation(func)
                known = ops.get(id(run))
                if known is None:
                    known = verdict(func, watch.extra, watch.numpy_only)
                    if id(run) in _OPERATIONS:      # a learnt operation lives as long as the process
                        ops[id(run)] = known
                why, name, views = known
                if why:
                    watch.note(why)
                    raise RuntimeError("this exercise is NumPy only" if watch.numpy_only else
                                       f"the grader does not allow {why.split(' (')[0]} here")
                if not state["inside"] and not _torch_function_enabled():
                    watch.note("torch._C.DisableTorchFunction (hides calls from the grader)")
                out = run(*args, **(kwargs or {}))      # exactly the operation named (OpOverload.__call__ does this)
                watch.ops += 1
                flops = _matmul_flops(name, args, out) if name in MATMULS and isinstance(out, _Tensor) else 0
                watch.matmul_flops += flops
                for i, t in enumerate(out if isinstance(out, (tuple, list)) else (out,)):
                    if isinstance(t, _Tensor):
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
