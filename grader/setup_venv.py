"""Sets up the grader's virtual environment (.venv) for `make grade`, `make test` and the rest.

python3 grader/setup_venv.py [--venv .venv] [--torch cpu|cuda|system] [--explicit-python]
                             [--dev requirements-dev.txt] [requirements.txt]

The Makefile runs it before every target that needs .venv; when .venv is up to date it returns in
milliseconds. Standard library only, and it runs on any Python 3.6 or newer, so that an interpreter
too old for the grader still gets a message naming its version rather than pip's ResolutionImpossible.

- The venv is built in a sibling folder (.venv.building-PID) and renamed into place once complete,
  its stamp (.venv/.installed) written inside before the rename: a failed, interrupted or killed
  setup never leaves a .venv that looks usable, and the next run starts over.
- The stamp records the interpreter (path and version), the hash of the requirements and the
  PyTorch choice. A venv set up for other requirements is rebuilt; so is one made with another
  Python or another TORCH, when PYTHON= or TORCH= is given. Left out, the venv's own choices stand:
  after `make grade PYTHON=python3.11`, a plain `make grade` keeps that venv. A venv the earlier
  Makefile set up (an empty stamp) is kept, and stamped, when it has every requirement.
- PyTorch: on Linux the CPU-only build from PyTorch's CPU wheel index (PyPI's Linux torch brings
  the CUDA stack, gigabytes the exercises never use), falling back to pip's configured index where
  that index cannot be reached; TORCH=cuda takes the configured index's default build; TORCH=system
  reuses the torch the chosen Python already has (a venv with --system-site-packages). On macOS and
  Windows the index's default build is CPU-only already. TORCH_CPU_INDEX= names another CPU index
  (a mirror).
- A second run while one is under way (another terminal, make -j) waits for it: a lock on the
  folder that holds the venv.
"""
import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

MIN_PYTHON = (3, 10)
CPU_INDEX = os.environ.get("TORCH_CPU_INDEX", "https://download.pytorch.org/whl/cpu")
# TORCH=system accepts torch 2.5 or newer: exercise 11's hidden tests compare with
# F.scaled_dot_product_attention(enable_gqa=...), new in 2.5.
MIN_SYSTEM_TORCH = (2, 5)
TORCH_CHOICES = ("cpu", "cuda", "system")
STAMP = ".installed"
DEV_STAMP = ".installed-dev"
PIP = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
TORCH_LINE = re.compile(r"^torch\s*($|[=<>!~;\[ ])")


class SetupError(Exception):
    """A reason to stop that the learner can act on; the message says how. status: the exit status."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


def say(msg):
    print(msg, flush=True)


def version_text(info):
    return ".".join(str(n) for n in info[:3])


def bindir(venv):
    return os.path.join(venv, "Scripts" if os.name == "nt" else "bin")


def venv_python(venv):
    return os.path.join(bindir(venv), "python.exe" if os.name == "nt" else "python")


def requirement_lines(path):
    """The lines of a requirements file with each -r file spliced in, comments and blanks dropped."""
    out = []
    with open(path) as f:
        for raw in f:
            line = raw.split(" #")[0].strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^(-r|--requirement)[ =]\s*(\S+)$", line)
            if m:
                out += requirement_lines(os.path.join(os.path.dirname(os.path.abspath(path)), m.group(2)))
            else:
                out.append(line)
    return out


def digest(path):
    return hashlib.sha256("\n".join(requirement_lines(path)).encode()).hexdigest()


def torch_requirement(lines):
    for line in lines:
        if TORCH_LINE.match(line):
            return line
    return None


def read_stamp(path):
    """The stamp's record; {} for a stamp written by the earlier Makefile (an empty file); None if absent."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    if not text.strip():
        return {}
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def interpreter(exe):
    """(real path, version tuple) of a Python, or None where it does not run."""
    if exe == sys.executable:
        return os.path.realpath(sys.executable), tuple(sys.version_info[:3])
    try:
        out = subprocess.check_output(
            [exe, "-c", "import os, sys; print(os.path.realpath(sys.executable)); print(*sys.version_info[:3])"],
            stderr=subprocess.DEVNULL, universal_newlines=True, timeout=30)
        path, version = out.strip().splitlines()[-2:]
        return path, tuple(int(n) for n in version.split())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def suggest_python():
    """The name of a Python 3.10+ on PATH (newest first), or None."""
    for minor in range(14, MIN_PYTHON[1] - 1, -1):
        name = "python3.%d" % minor
        if shutil.which(name):
            found = interpreter(name)
            if found and found[1][:2] >= MIN_PYTHON:
                return name
    return None


def check_version(python_name, version, goal):
    if tuple(version[:2]) >= MIN_PYTHON:
        return
    found = suggest_python()
    how = ("Run: make %s PYTHON=%s" % (goal, found) if found else
           "Install Python %d.%d or newer (python.org, your package manager or pyenv), then run: "
           "make %s PYTHON=/path/to/python3" % (MIN_PYTHON + (goal,)))
    raise SetupError("this project needs Python %d.%d or newer; %s is %s. %s"
                     % (MIN_PYTHON + (python_name, version_text(version), how)))


def why_rebuild(stamp, requirements_hash, python, torch):
    """Why the venv with this stamp cannot be kept (None: keep it).

    python: (real path, version) when PYTHON= was given, else None; torch: TORCH= or None."""
    if stamp is None:
        return "an earlier setup left it unfinished"
    if stamp.get("requirements") != requirements_hash:
        return "requirements.txt changed since it was set up"
    made_with, made_version = stamp.get("python") or "", stamp.get("python_version") or ""
    if python and (made_with != python[0] or made_version.split(".")[:2] != [str(n) for n in python[1][:2]]):
        return "it was made with Python %s (%s); PYTHON= asks for %s (%s)" % (
            made_version, made_with, version_text(python[1]), python[0])
    if not os.path.exists(made_with):
        return "the Python it was made with (%s) is gone" % made_with
    if torch and torch != stamp.get("torch"):
        return "it was set up with TORCH=%s; TORCH=%s asks for another PyTorch build" % (stamp.get("torch"), torch)
    return None


# Run by a venv's own Python: which requirement lines it does not satisfy, and what it is.
PROBE = r"""
import json, os, sys
import importlib.metadata as md
from pip._vendor.packaging.requirements import Requirement
missing = []
for line in json.loads(sys.argv[1]):
    try:
        r = Requirement(line)
        if (r.marker is None or r.marker.evaluate()) and not r.specifier.contains(md.version(r.name), prereleases=True):
            missing.append(line)
    except Exception:
        missing.append(line)
try:
    torch = md.version("torch")
except Exception:
    torch = None
print(json.dumps({"missing": missing, "python": os.path.realpath(sys.executable),
                  "python_version": ".".join(map(str, sys.version_info[:3])), "torch_installed": torch}))
"""


def adopt(venv, requirements):
    """The record for a venv set up by the earlier Makefile (an empty stamp), if it has what the
    requirements ask for (None otherwise): such a venv is kept rather than downloaded again."""
    lines = [line for line in requirement_lines(requirements) if not line.startswith("-")]
    try:
        out = subprocess.check_output([venv_python(venv), "-c", PROBE, json.dumps(lines)],
                                      stderr=subprocess.DEVNULL, universal_newlines=True, timeout=120)
        found = json.loads(out.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None
    if found["missing"]:
        return None
    torch = found["torch_installed"]
    found.update(requirements=digest(requirements), torch_source="adopted from an earlier setup",
                 torch=resolve_torch(None, "cpu" if torch and torch.endswith("+cpu") else
                                     "cuda" if torch and sys.platform.startswith("linux") else None))
    del found["missing"]
    return found


def write_stamp(path, record):
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, path)


def remove(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    try:        # a zombie (killed, its parent gone, not yet reaped) is not a setup at work
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_leftovers(venv):
    """Folders of a setup that was killed before it could clean up (its process is gone)."""
    for path in glob.glob(glob.escape(venv) + ".building-*") + glob.glob(glob.escape(venv) + ".old-*"):
        pid = path.rsplit("-", 1)[-1]
        if pid.isdigit() and not alive(int(pid)):
            remove(path)


def cpu_index_reachable():
    import urllib.request
    try:
        urllib.request.urlopen(CPU_INDEX.rstrip("/") + "/torch/", timeout=10).close()
        return True
    except Exception:   # DNS, refused, timeout, proxy, TLS, HTTP error: all mean "use the fallback"
        return False


class Builder:
    """Runs one install step at a time, so that an interruption can stop the step under way."""

    def __init__(self):
        self.child = None

    def run(self, cmd):
        self.child = subprocess.Popen(cmd)
        try:
            status = self.child.wait()
        finally:
            if self.child.poll() is None:
                self.child.terminate()
                try:
                    self.child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.child.kill()
                    self.child.wait()
            self.child = None
        if status != 0:
            raise SetupError("Setup failed: `%s` exited with status %d (its message is above). Nothing "
                             "half-made was kept: the next run starts over." % (" ".join(cmd[1:4]) + " ...", status),
                             status=1)


def relocate(tmp, final):
    """Scripts in bin/ and pyvenv.cfg name the folder they were installed in: name the final one."""
    old, new = os.path.abspath(tmp).encode(), os.path.abspath(final).encode()
    paths = [os.path.join(bindir(tmp), n) for n in os.listdir(bindir(tmp))] + [os.path.join(tmp, "pyvenv.cfg")]
    for path in paths:
        if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > 1 << 20:
            continue
        with open(path, "rb") as f:
            data = f.read()
        if old in data and (data.startswith(b"#!") or b"\0" not in data):
            with open(path, "wb") as f:
                f.write(data.replace(old, new))


def build(venv, requirements, python_exe, version, torch, builder, system_torch=None):
    """Builds the venv in a sibling folder and renames it into place; returns the stamp's record."""
    lines = requirement_lines(requirements)
    torch_req = torch_requirement(lines)
    tmp = "%s.building-%d" % (venv, os.getpid())
    remove(tmp)
    started = time.time()
    try:
        cmd = [python_exe, "-m", "venv"] + (["--system-site-packages"] if torch == "system" else []) + [tmp]
        builder.run(cmd)
        py = venv_python(tmp)
        rest = [line for line in lines if not TORCH_LINE.match(line)]
        source = "the Python's own site-packages" if torch == "system" else None
        if torch_req and torch == "cpu" and cpu_index_reachable():
            source = CPU_INDEX
            say("Installing %s, CPU-only, from %s..." % (torch_req, CPU_INDEX))
            builder.run([py] + PIP + [torch_req, "--index-url", CPU_INDEX])
        elif torch_req and torch != "system":
            source = "pip's configured index"
            if torch == "cpu":
                say("PyTorch's CPU index (%s) cannot be reached: installing %s from pip's configured index "
                    "instead (on Linux, PyPI's build brings CUDA: several GB)." % (CPU_INDEX, torch_req))
            rest.insert(0, torch_req)
        if rest:
            listing = os.path.join(tmp, ".requirements.txt")
            with open(listing, "w") as f:
                f.write("\n".join(rest) + "\n")
            say("Installing %s..." % ", ".join(re.split(r"[=<>!~;\[ ]", line)[0] for line in rest))
            builder.run([py] + PIP + ["-r", listing])
            os.unlink(listing)
        installed = system_torch
        if torch_req and not system_torch:
            installed = subprocess.check_output(
                [py, "-c", "import importlib.metadata as m; print(m.version('torch'))"],
                universal_newlines=True).strip()
        relocate(tmp, venv)
        record = {"python": python_exe, "python_version": version_text(version),
                  "requirements": digest(requirements), "torch": torch, "torch_installed": installed,
                  "torch_source": source}
        write_stamp(os.path.join(tmp, STAMP), record)     # last: a stamp means a complete venv
        old = "%s.old-%d" % (venv, os.getpid())
        if os.path.lexists(venv):
            os.rename(venv, old)
        os.rename(tmp, venv)
        remove(old)
    except BaseException:
        remove(tmp)
        raise
    say("Set up %s in %.0f s: Python %s%s." % (os.path.relpath(venv), time.time() - started, version_text(version),
                                               ", torch %s" % installed if installed else ""))
    return record


def resolve_torch(asked, recorded):
    if asked:
        return asked
    if recorded in TORCH_CHOICES:
        return recorded
    return "cpu" if sys.platform.startswith("linux") else "default"


def check_system_torch(python_exe, python_name):
    if sys.prefix != sys.base_prefix and python_exe == os.path.realpath(sys.executable):
        raise SetupError("TORCH=system: %s is a virtual environment's Python, whose packages a new venv cannot "
                         "see; give PYTHON= the interpreter that has torch in its own site-packages." % python_name)
    try:
        out = subprocess.check_output([python_exe, "-c", "import torch; print(torch.__version__)"],
                                      stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    except subprocess.CalledProcessError as e:
        last = (e.output.strip().splitlines() or ["(no message)"])[-1]
        raise SetupError("TORCH=system: %s cannot import torch (%s). Install torch there, or leave TORCH= out "
                         "to install PyTorch's CPU build into .venv." % (python_name, last))
    version = out.strip().splitlines()[-1]
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    if numbers < MIN_SYSTEM_TORCH:
        raise SetupError("TORCH=system: %s has torch %s; the grader needs %d.%d or newer. Leave TORCH= out to "
                         "install PyTorch's CPU build into .venv." % ((python_name, version) + MIN_SYSTEM_TORCH))
    say("TORCH=system: reusing torch %s from %s." % (version, python_name))
    return version


def ensure(args, builder):
    venv = os.path.abspath(args.venv)
    remove_leftovers(venv)
    stamp_path = os.path.join(venv, STAMP)
    stamp = read_stamp(stamp_path) if os.path.lexists(venv) else None
    explicit = interpreter(sys.executable) if args.explicit_python else None
    if stamp == {}:
        adopted = adopt(venv, args.requirements)
        if adopted:
            write_stamp(stamp_path, adopted)
        stamp = adopted or {"requirements": "not what requirements.txt asks for"}
    if os.path.lexists(venv):
        reason = why_rebuild(stamp, digest(args.requirements), explicit, args.torch)
        if reason is None and os.path.exists(venv_python(venv)):
            return
        announce = "Rebuilding %s: %s." % (args.venv, reason or "its Python (%s) is gone" % venv_python(venv))
    else:
        announce = "Setting up %s (first run only)..." % args.venv
    stamp = stamp or {}
    # Without PYTHON=, a rebuild keeps the Python the venv was made with, where it still runs.
    python_exe, version = interpreter(sys.executable)
    name = args.python_name
    if not explicit and stamp.get("python") and stamp["python"] != python_exe:
        found = interpreter(stamp["python"])
        if found:
            (python_exe, version), name = found, stamp["python"]
    check_version(name, version, args.goal)     # before anything is created
    torch = resolve_torch(args.torch, stamp.get("torch"))
    system_torch = check_system_torch(python_exe, name) if torch == "system" else None
    say(announce)
    if sys.platform.startswith("linux") and shutil.which("nvidia-smi"):
        say("nvidia-smi found (an NVIDIA GPU): " + (
            "installing PyTorch's CUDA build (TORCH=cuda)." if torch == "cuda" else
            "installing CPU-only PyTorch, all the exercises need; `make setup TORCH=cuda` installs the CUDA "
            "build instead." if torch == "cpu" else "TORCH=system reuses the torch %s has." % name))
    build(venv, args.requirements, python_exe, version, torch, builder, system_torch)


def ensure_dev(args, builder):
    venv = os.path.abspath(args.venv)
    path = os.path.join(venv, DEV_STAMP)
    stamp = read_stamp(path)
    want = digest(args.dev)
    if stamp == {} and adopt(venv, args.dev):      # the earlier Makefile's stamp, its packages all there
        write_stamp(path, {"requirements": want})
        return
    if stamp and stamp.get("requirements") == want:
        return
    lines = [line for line in requirement_lines(args.dev) if not TORCH_LINE.match(line)]
    listing = os.path.join(venv, ".requirements-dev.txt")
    with open(listing, "w") as f:
        f.write("\n".join(lines) + "\n")
    say("Installing %s into %s..." % (os.path.basename(args.dev), args.venv))
    try:
        builder.run([venv_python(venv)] + PIP + ["-r", listing])
    finally:
        os.unlink(listing)
    write_stamp(path, {"requirements": want})


def lock(venv):
    """Locks the folder that holds the venv for the rest of the process (flock on the folder itself:
    no file is made): a second make run (another terminal, make -j) waits for a setup under way
    instead of building beside it."""
    try:
        import fcntl
    except ImportError:     # Windows: no lock
        return None
    fd = os.open(os.path.dirname(venv), os.O_RDONLY)
    deadline = time.time() + 1
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            if time.time() > deadline:
                say("Waiting for another setup of %s to finish..." % os.path.basename(venv))
                fcntl.flock(fd, fcntl.LOCK_EX)
                return fd
            time.sleep(0.05)


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    parser = argparse.ArgumentParser(prog="grader/setup_venv.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("requirements", nargs="?", default="requirements.txt")
    parser.add_argument("--venv", default=".venv")
    parser.add_argument("--dev", help="a second requirements file installed on top (requirements-dev.txt)")
    parser.add_argument("--torch", help="cpu (Linux default), cuda, or system")
    parser.add_argument("--explicit-python", action="store_true",
                        help="this interpreter was asked for (PYTHON=): rebuild a venv made with another")
    parser.add_argument("--python-name", default="python3", help="how PYTHON was spelled, for messages")
    parser.add_argument("--goal", default="grade", help="the make target, for messages")
    args = parser.parse_args(argv)
    if args.torch is not None and args.torch not in TORCH_CHOICES:
        say("TORCH=%s is not one of %s." % (args.torch, ", ".join(TORCH_CHOICES)))
        return 2
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, interrupted)
    builder = Builder()
    try:
        held = lock(os.path.abspath(args.venv))  # noqa: F841 (released when the process ends)
        ensure(args, builder)
        if args.dev:
            ensure_dev(args, builder)
    except SetupError as e:
        say(str(e))
        return e.status
    except KeyboardInterrupt:
        say("\nSetup interrupted: nothing half-made was kept; the next run starts over.")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
