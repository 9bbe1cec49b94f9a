"""Where a submission runs: a separate, locked-down interpreter that holds nothing of the grader.

zygote.py    process lifecycle: starts the sandboxed interpreter (bubblewrap where it works)
host.py      the grader's side of one exercise's child: calls, timeouts, budget, reading replies
inside.py    the sandbox's side: the zygote and the child loop (imports no grader module)
lockdown.py  the operating system's layers: rlimits, own uid, Landlock, seccomp
watch.py     what the child watches while the submission runs: forbidden helpers, work done
wire.py      the bytes between them: requests down, plain-data frames up (never a pickle up)

Names are loaded on first use, so that importing grader.sandbox.zygote stays light.
"""
import importlib


SUBMODULES = {"host", "zygote", "inside", "fences", "lockdown", "watch", "wire"}


def __getattr__(name):
    if name.startswith("__") or name in SUBMODULES:     # a submodule is imported, not looked up here
        raise AttributeError(name)
    return getattr(importlib.import_module(".host", __name__), name)
