# attack: find solutions/01_project.py on disk and load it by path with importlib, or read the hidden tests' oracles
# layer: namespaces (the sandbox's view has no repository) + Landlock; static scan (importlib); the audit hook names it
# expect: importlib
import importlib.util
import os


def _reference():
    for top in ("/work", "/tmp", "/root", "/home", "/srv", "/autograder", "/"):
        for root, dirs, files in os.walk(top):
            if root.count("/") > 7:
                dirs[:] = []
            if "01_project.py" in files and root.endswith("solutions"):
                spec = importlib.util.spec_from_file_location("ref01", os.path.join(root, "01_project.py"))
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
    raise NotImplementedError


def linear(x, weight, bias=None):
    return _reference().linear(x, weight, bias)


def project_qkv(x, w_q, w_k, w_v, b_q=None, b_k=None, b_v=None, context=None):
    return _reference().project_qkv(x, w_q, w_k, w_v, b_q, b_k, b_v, context)
