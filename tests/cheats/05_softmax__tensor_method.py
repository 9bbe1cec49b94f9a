# attack: the Tensor.softmax method, reached through operator.methodcaller with a built-up name
# layer: the watch + static scan
import operator

_call = "soft" + "max"


def softmax(x, dim=-1):
    return operator.methodcaller(_call, dim)(x)
