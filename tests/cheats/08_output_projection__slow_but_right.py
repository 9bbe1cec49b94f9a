# attack: a right answer that sleeps just under the per-call limit at import and in every call, to stretch the grade
# layer: host (one time budget per exercise, counting the load; what is left fails as too slow)
# expect: too slow
import time

time.sleep(1.5)


def output_projection(x, w_o, b_o=None):
    time.sleep(1.5)
    out = x @ w_o.transpose(-1, -2)
    return out if b_o is None else out + b_o
