# attack: flood stdout and stderr with 100 MB of text (fake "complete" lines among it), then fail
# layer: rlimits (RLIMIT_FSIZE on its printing) + report (cut)
import sys

_LINE = "  08 output_projection  10.0/10  complete " * 6 + "\n"


def _attack(*args, **kwargs):
    for _ in range(200_000):
        try:
            print(_LINE, end="")
            sys.stderr.write(_LINE)
        except BaseException:
            pass
    raise RuntimeError("done flooding")


def __getattr__(name):
    """Every function or class the grader asks this file for is the attack."""
    if name.startswith("_"):
        raise AttributeError(name)
    return _attack
