"""Setup (grader/setup_venv.py, `make setup`): the Python version check, an interrupted or failed
install, a stale venv, and where torch comes from.

No test downloads anything: pip installs tiny wheels built here from a local index served here (a
'torch' wheel among them, 2.13.0+cpu on the stand-in for PyTorch's CPU index, 2.13.0 on the one
for pip's configured index), with this machine's pip configuration switched off.
"""
import glob
import http.server
import importlib.util
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.parse
import zipfile

import pytest

from helpers import REPO

SCRIPT = REPO / "grader" / "setup_venv.py"
spec = importlib.util.spec_from_file_location("setup_venv", SCRIPT)
setup_venv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup_venv)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="a POSIX venv layout and make")


def wheel(name, version):
    """A minimal pure-Python wheel: {filename: bytes}."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"__version__ = {version!r}\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{dist}/RECORD"] = "".join(f"{p},,\n" for p in files) + f"{dist}/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p, text in files.items():
            z.writestr(p, text)
    return f"{name}-{version}-py3-none-any.whl", buf.getvalue()


class Index:
    """Two package indexes on one local server: /simple/ (pip's configured index) and /cpu/ (the
    stand-in for PyTorch's CPU index). A wheel named in `stall` is sent half-way and then held until
    `release` is set; one named in `drop` is sent half-way and the connection closed."""

    def __init__(self):
        self.projects = {"simple": {}, "cpu": {}}
        self.files = {}
        self.stall, self.drop = set(), set()
        self.stalled, self.release = threading.Event(), threading.Event()
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = [p for p in self.path.split("/") if p]
                if len(parts) == 2 and parts[0] in index.projects and parts[1] in index.projects[parts[0]]:
                    links = "".join(f'<a href="/files/{urllib.parse.quote(f)}">{f}</a>\n'
                                    for f in index.projects[parts[0]][parts[1]])
                    return self.send(links.encode(), "text/html")
                if len(parts) == 2 and parts[0] == "files" and urllib.parse.unquote(parts[1]) in index.files:
                    name = urllib.parse.unquote(parts[1])
                    data = index.files[name]
                    if name in index.stall | index.drop:
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data[:len(data) // 2])
                        self.wfile.flush()
                        if name in index.stall:
                            index.stalled.set()
                            index.release.wait(60)
                        self.close_connection = True
                        return
                    return self.send(data, "application/octet-stream")
                self.send_error(404)

            def send(self, data, kind):
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, where, name, version):
        filename, data = wheel(name, version)
        self.files[filename] = data
        self.projects[where].setdefault(name, []).append(filename)
        return filename


@pytest.fixture
def index():
    idx = Index()
    idx.add("simple", "torch", "2.13.0")        # on Linux, PyPI's torch is the CUDA build
    idx.add("cpu", "torch", "2.13.0+cpu")
    idx.add("simple", "tinydep", "1.0")
    idx.add("simple", "tinydep", "2.0")
    yield idx
    idx.release.set()
    idx.server.shutdown()


def pip_env(index, cpu_index=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "TORCH_CPU_INDEX"}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL=index.url + "/simple", PIP_NO_CACHE_DIR="1",
               PIP_RETRIES="0", PIP_TIMEOUT="10", PIP_DISABLE_PIP_VERSION_CHECK="1",
               TORCH_CPU_INDEX=cpu_index or index.url + "/cpu")
    return env


@pytest.fixture
def course(tmp_path):
    """What `make setup` needs: the Makefile, the script, and a requirements.txt of tiny wheels."""
    root = tmp_path / "course"
    (root / "grader").mkdir(parents=True)
    shutil.copy(REPO / "Makefile", root)
    shutil.copy(SCRIPT, root / "grader")
    (root / "requirements.txt").write_text("# what the grader needs\ntorch==2.13.0\ntinydep==1.0\n")
    return root


def setup(root, env, *args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def left_behind(root):
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".venv"))


def stamp(root):
    return json.loads((root / ".venv" / ".installed").read_text())


def fake_python(tmp_path, version=(3, 9, 18)):
    """A `python3` that reports an old version: this interpreter with sys.version_info rewritten,
    running whatever script it is given, as an old Python would."""
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(
        "#!/bin/sh\n"
        f'exec "{sys.executable}" -c \'import sys, runpy; sys.version_info = {version!r}; '
        f'sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")\' "$@"\n')
    fake.chmod(0o755)
    return fake


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_an_old_python_is_named_before_anything_is_created(course, tmp_path):
    fake = fake_python(tmp_path)
    proc = subprocess.run(["make", "--no-print-directory", "grade", f"PYTHON={fake}"], cwd=course,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert f"this project needs Python 3.10 or newer; {fake} is 3.9.18." in proc.stdout
    assert "make grade PYTHON=" in proc.stdout
    assert left_behind(course) == []
    # The default python3 is the one named, and the goal is the one the learner typed.
    env = dict(os.environ, PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["make", "--no-print-directory", "setup"], cwd=course, env=env,
                          capture_output=True, text=True, timeout=60)
    assert "needs Python 3.10 or newer; python3 is 3.9.18. " in proc.stdout
    assert "make setup PYTHON=" in proc.stdout
    assert left_behind(course) == []


def real_old_python():
    candidates = [shutil.which(f"python3.{m}") for m in (6, 7, 8, 9)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.[6789].*/bin/python3")))
    for exe in filter(None, candidates):
        try:
            subprocess.run([exe, "-c", "pass"], check=True, capture_output=True, timeout=30)
            return exe
        except (OSError, subprocess.SubprocessError):
            continue
    return None


@pytest.mark.skipif(not real_old_python(), reason="no Python older than 3.10 here")
def test_a_real_old_python_runs_the_check_itself(course):
    old = real_old_python()
    proc = subprocess.run([old, "grader/setup_venv.py", "--python-name", "python3"], cwd=course,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "this project needs Python 3.10 or newer; python3 is 3." in proc.stdout
    assert left_behind(course) == []


UNREACHABLE = "http://127.0.0.1:9/whl/cpu"


def test_without_pytorchs_cpu_index_setup_says_so_and_torch_cuda_rebuilds(course, index, tmp_path):
    # A .venv the earlier Makefile left half-made (no stamp) is started over; an NVIDIA GPU is named.
    (course / ".venv" / "bin").mkdir(parents=True)
    gpu = tmp_path / "gpu"
    gpu.mkdir()
    (gpu / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA-SMI 550.54'\n")
    (gpu / "nvidia-smi").chmod(0o755)
    env = dict(pip_env(index, cpu_index=UNREACHABLE), PATH=f"{gpu}{os.pathsep}{os.environ['PATH']}")
    proc = setup(course, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Rebuilding .venv: an earlier setup left it unfinished." in proc.stdout
    if sys.platform.startswith("linux"):
        assert [line for line in proc.stdout.splitlines() if "nvidia-smi" in line] == [
            "nvidia-smi found (an NVIDIA GPU): installing CPU-only PyTorch, all the exercises need; "
            "`make setup TORCH=cuda` installs the CUDA build instead."]
    assert f"PyTorch's CPU index ({UNREACHABLE}) cannot be reached: installing torch==2.13.0 " \
           "from pip's configured index instead" in proc.stdout
    assert {k: stamp(course)[k] for k in ("torch", "torch_installed", "torch_source")} == \
        {"torch": "cpu", "torch_installed": "2.13.0", "torch_source": "pip's configured index"}
    # A plain run keeps it, saying nothing; TORCH=cuda rebuilds it, and then that choice stands.
    assert setup(course, pip_env(index)).stdout == ""
    proc = setup(course, pip_env(index), "--torch", "cuda")
    assert "TORCH=cuda asks for another PyTorch build" in proc.stdout
    assert "cannot be reached" not in proc.stdout
    assert stamp(course)["torch"] == "cuda"
    assert setup(course, pip_env(index)).stdout == ""
    assert left_behind(course) == [".venv"]
    # The scripts pip wrote name the venv's final place, not the folder it was built in.
    assert (course / ".venv" / "bin" / "pip").read_text().startswith(f"#!{course / '.venv'}/bin/python")


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_a_failed_or_interrupted_setup_leaves_nothing_and_the_next_run_starts_over(course, index):
    env = pip_env(index)
    # The connection drops half-way through a download: pip fails, and nothing is kept.
    index.drop.add("tinydep-1.0-py3-none-any.whl")
    proc = subprocess.run(["make", "--no-print-directory", "setup"], cwd=course, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "Setup failed: " in proc.stdout
    assert "Nothing half-made was kept: the next run starts over." in proc.stdout
    assert left_behind(course) == []
    index.drop.clear()
    index.stall.add("tinydep-1.0-py3-none-any.whl")

    def interrupt(sig):
        proc = subprocess.Popen(["make", "--no-print-directory", "setup"], cwd=course, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        assert index.stalled.wait(60), "pip never reached the download"
        assert [p.name.split("-")[0] for p in course.iterdir() if p.name.startswith(".venv")] == [".venv.building"]
        os.killpg(proc.pid, sig)
        out = proc.communicate(timeout=60)[0]
        index.stalled.clear()
        return out

    # Ctrl-C in a terminal: SIGINT to make, the script and pip.
    out = interrupt(signal.SIGINT)
    assert "Setup interrupted: nothing half-made was kept; the next run starts over." in out
    assert left_behind(course) == []
    # Killed outright, it cannot clean up: no .venv, and the next run clears what it left.
    interrupt(signal.SIGKILL)
    assert ".venv" not in left_behind(course)
    index.stall.clear()
    index.release.set()
    proc = subprocess.run(["make", "--no-print-directory", "setup"], cwd=course, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Setting up .venv (first run only)..." in proc.stdout
    assert left_behind(course) == [".venv"]
    # PyTorch's CPU index reached: torch came from it.
    assert f"Installing torch==2.13.0, CPU-only, from {index.url}/cpu..." in proc.stdout
    assert stamp(course)["torch_installed"] == "2.13.0+cpu"
    assert stamp(course)["torch_source"] == index.url + "/cpu"


def test_torch_system_reuses_a_recent_torch_and_refuses_an_old_one(course, index, tmp_path):
    # The base interpreter, given a torch of our own on PYTHONPATH (a venv's Python is refused:
    # a new venv cannot see its packages).
    base = os.path.realpath(sys.executable)
    site = tmp_path / "site"
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text("__version__ = '2.1.0'\n")
    env = dict(pip_env(index), PYTHONPATH=str(site))

    def run():
        return subprocess.run([base, str(SCRIPT), "--torch", "system"], cwd=course, env=env, capture_output=True,
                              text=True, timeout=120)
    proc = run()
    assert proc.returncode == 2
    assert "TORCH=system: python3 has torch 2.1.0; the grader needs 2.5 or newer." in proc.stdout
    assert left_behind(course) == []
    (site / "torch" / "__init__.py").write_text("__version__ = '2.6.0+cpu'\n")
    proc = run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TORCH=system: reusing torch 2.6.0+cpu from python3." in proc.stdout
    assert {k: stamp(course)[k] for k in ("torch", "torch_installed")} == {"torch": "system",
                                                                           "torch_installed": "2.6.0+cpu"}
    assert not list((course / ".venv").glob("lib/*/site-packages/torch")), "pip installed a torch of its own"
    assert list((course / ".venv").glob("lib/*/site-packages/tinydep"))
    assert "include-system-site-packages = true" in (course / ".venv" / "pyvenv.cfg").read_text()


def python_wrapper(venv):
    (venv / "bin").mkdir(parents=True)
    wrapper = venv / "bin" / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)


def forge(root, **record):
    """A venv that looks complete (a marker file inside), with this stamp."""
    venv = root / ".venv"
    python_wrapper(venv)
    (venv / "marker").touch()
    here = setup_venv.interpreter(sys.executable)
    full = {"python": here[0], "python_version": setup_venv.version_text(here[1]),
            "requirements": setup_venv.digest(str(root / "requirements.txt")), "torch": "cpu"}
    full.update(record)
    (venv / ".installed").write_text(json.dumps(full))


def test_a_venv_for_other_requirements_or_another_python_is_rebuilt(course, index):
    forge(course)
    assert setup(course, pip_env(index), "--explicit-python").stdout == ""    # matches: kept
    assert (course / ".venv" / "marker").exists()
    # A comment is not a change of requirements; a version is.
    reqs = course / "requirements.txt"
    reqs.write_text(reqs.read_text() + "# a note\n")
    assert setup(course, pip_env(index)).stdout == ""
    reqs.write_text(reqs.read_text().replace("tinydep==1.0", "tinydep==2.0"))
    proc = setup(course, pip_env(index))
    assert "Rebuilding .venv: requirements.txt changed since it was set up." in proc.stdout
    assert not (course / ".venv" / "marker").exists()
    assert stamp(course)["requirements"] == setup_venv.digest(str(reqs))
    # Made with another Python: kept while PYTHON= is left out, rebuilt when PYTHON= names this one.
    shutil.rmtree(course / ".venv")
    forge(course, python=sys.executable + "-elsewhere", python_version="3.10.1")
    proc = setup(course, pip_env(index))
    assert "the Python it was made with" in proc.stdout and "is gone" in proc.stdout
    shutil.rmtree(course / ".venv")
    forge(course, python_version="3.10.1")
    assert setup(course, pip_env(index)).stdout == ""
    proc = setup(course, pip_env(index), "--explicit-python")
    assert "Rebuilding .venv: it was made with Python 3.10.1" in proc.stdout
    assert not (course / ".venv" / "marker").exists()
    assert stamp(course)["python_version"] == setup_venv.version_text(sys.version_info)


@pytest.mark.fast
def test_why_rebuild_names_each_difference():
    here = setup_venv.interpreter(sys.executable)
    record = {"python": here[0], "python_version": setup_venv.version_text(here[1]), "requirements": "h",
              "torch": "cpu"}
    assert setup_venv.why_rebuild(record, "h", here, "cpu") is None
    assert setup_venv.why_rebuild(record, "h", None, None) is None
    assert "unfinished" in setup_venv.why_rebuild(None, "h", None, None)
    assert "requirements.txt changed" in setup_venv.why_rebuild(record, "other", None, None)
    assert "TORCH=system asks" in setup_venv.why_rebuild(record, "h", None, "system")
    assert "PYTHON= asks" in setup_venv.why_rebuild(record, "h", ("/elsewhere/python3", (3, 12, 1)), None)
    assert "PYTHON= asks" in setup_venv.why_rebuild(record, "h", (here[0], (3, 99, 0)), None)


@pytest.mark.fast
def test_a_venv_from_the_earlier_makefile_is_kept_when_it_has_everything(tmp_path):
    venv = tmp_path / ".venv"
    python_wrapper(venv)        # this interpreter has pytest, not pytest 999
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("pytest>=1\n")
    record = setup_venv.adopt(str(venv), str(reqs))
    assert record["requirements"] == setup_venv.digest(str(reqs))
    assert record["python"] == os.path.realpath(sys.executable)
    reqs.write_text("pytest>=999\n")
    assert setup_venv.adopt(str(venv), str(reqs)) is None


@pytest.mark.fast
def test_the_script_parses_on_python_3_6():
    import ast
    ast.parse(SCRIPT.read_text(), feature_version=(3, 6))
