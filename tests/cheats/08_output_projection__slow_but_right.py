# attack: a right answer that sleeps at import and just under the per-call limit in every call, to stretch the grade
# layer: host (one time budget per exercise, counting the load; what is left fails as too slow)
# expect: too slow
import time

time.sleep(2.5)


def output_projection(x, w_o, b_o=None):
    time.sleep(1.9)
    out = x @ w_o.transpose(-1, -2)
    return out if b_o is None else out + b_o
