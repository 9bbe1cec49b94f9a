# attack: install a tracer from inside a call (the narration exemption once matched every learner function) to reach the watch
# layer: the audit hook: tracing is refused whenever the submission is on the stack, and allowed only in the narration call
# expect: settrace
# runtime: settrace
import math
import sys


def _tracer(frame, event, arg):
    watch = frame.f_locals.get("watch")
    if watch is not None:
        watch.forbidden.clear()
    return _tracer


def attention_scores(q, k, scale=None):
    sys.settrace(_tracer)
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return q @ k.transpose(-2, -1) * s
