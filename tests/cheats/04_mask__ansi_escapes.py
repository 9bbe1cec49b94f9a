# attack: clear the screen and print a fake "Total 150.0 / 150" with ANSI escapes, in printed output and in error messages
# layer: report (every string from a submission is stripped of control characters and cut)
_FAKE = "\x1b[2J\x1b[H\x1b[1mTotal 150.0 / 150\x1b[0m\r\x1b[32m04 mask 10.0/10 complete\x1b[0m\x07"
print(_FAKE * 20)


def causal_mask(L, S=None, device=None):
    print(_FAKE)
    raise ValueError(_FAKE)


def padding_mask(lengths, S):
    raise ValueError(_FAKE)


def apply_mask(scores, mask):
    raise RuntimeError(_FAKE)
