"""Is a virtualenv restored from the Classroom cache the one a clean install makes?

python -m grader.venvcheck VENV --requirements requirements.txt [--digest SHA256] [--purge-bytecode]
python -m grader.venvcheck VENV --print-digest

The Classroom workflow caches the grader's virtualenv. A cache entry is written by whatever
workflow ran, and an edited workflow in the student's repository can write (or delete and
rewrite) one under the course's key, so a restored venv is data the student may have made. It is
run only once this check passes, with the runner's own Python (setup-python's, never the venv's):

- its layout is what `python -m venv` makes: pyvenv.cfg names this very interpreter (no system
  site-packages), bin/python* link to it, lib64 links to lib; nothing else is a link;
- every other file belongs to an installed distribution and matches the sha256 its RECORD lists;
  no file goes unrecorded (a sitecustomize.py or a .pth dropped in would run at start-up);
- bytecode is deleted (--purge-bytecode): RECORD gives .pyc files no hash, and a stale-looking
  .pyc beside a good .py would run instead of it;
- the distributions the course requires (requirements.txt, -r followed) are installed at versions
  its specifiers allow;
- with --digest, the sha256 over every recorded (path, hash) pair equals the one the course
  trusts (COURSE_GRADER_VENV_DIGEST; a fresh install prints it with --print-digest).

What it proves: without --digest, that nobody changed a file without also rewriting its RECORD,
and that the course's pins hold; that stops an accident or a careless poisoning, not a deliberate
one, which rewrites RECORD too. With --digest, that the venv is, file for file, the one whose
digest the instructor recorded. It proves nothing about the runner itself, and a student who
edits the workflow controls that one run whatever it restores (the audit of .github/ flags it).
Standard library only.
"""
import argparse
import base64
import csv
import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

ACTIVATE = {"activate", "activate.csh", "activate.fish", "Activate.ps1"}     # written by venv, never run
PYVENV_KEYS = {"home", "include-system-site-packages", "version", "executable", "command", "prompt"}


class Untrusted(Exception):
    pass


def _name(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _release(version):
    """(2, 13, 0) for '2.13.0+cpu'; the local label and any pre-release tail do not count."""
    return tuple(int(x) for x in re.findall(r"\d+", version.split("+")[0].split("rc")[0].split("a")[0])[:4])


OPERATORS = {"==": lambda a, b: a == b, ">=": lambda a, b: a >= b, "~=": lambda a, b: a >= b,
             "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b, "!=": lambda a, b: a != b}


def pins(requirements):
    """{normalised name: [(operator, version), ...]} from a requirements file. Options (--index-url,
    --hash) and environment markers are set aside; -r FILE is followed."""
    found = {}
    path = Path(requirements)
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = re.sub(r"\s--hash=\S+", "", line.split("#", 1)[0]).split(";", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"-r\s*(\S+)", line)
        if m:
            found.update(pins(path.parent / m.group(1)))
            continue
        if line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*((?:[=<>!~]=?\s*[0-9][0-9A-Za-z.+*]*\s*,?\s*)*)",
                         line)
        if not m:
            raise Untrusted(f"{requirements}:{n}: cannot read the requirement {line!r}")
        found[_name(m.group(1))] = re.findall(r"([=<>!~]=?)\s*([0-9][0-9A-Za-z.+*]*)", m.group(2))
    return found


def _trusted_python():
    return {Path(p).resolve() for p in (sys.executable, getattr(sys, "_base_executable", sys.executable))}


def _site_packages(venv):
    found = sorted((venv / "lib").glob("python3.*/site-packages"))
    if len(found) != 1 or found[0].parent.name != f"python{sys.version_info[0]}.{sys.version_info[1]}":
        raise Untrusted(f"{venv}: expected lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages alone")
    return found[0]


def _check_layout(venv):
    cfg = venv / "pyvenv.cfg"
    if cfg.is_symlink() or not cfg.is_file():
        raise Untrusted("pyvenv.cfg is missing or a link")
    values = {}
    for line in cfg.read_text().splitlines():
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    extra = set(values) - PYVENV_KEYS - {""}
    if extra:
        raise Untrusted(f"pyvenv.cfg has keys a venv does not write: {', '.join(sorted(extra))}")
    here = _trusted_python()
    if values.get("include-system-site-packages") != "false":
        raise Untrusted("pyvenv.cfg lets in the system's site-packages")
    if Path(values.get("home", "/nonexistent")).resolve() not in {p.parent for p in here} | \
            {Path(sys.executable).parent.resolve()}:
        raise Untrusted(f"pyvenv.cfg's home is {values.get('home')!r}, not this interpreter's folder")
    if values.get("version") != "%d.%d.%d" % sys.version_info[:3]:
        raise Untrusted(f"pyvenv.cfg's version is {values.get('version')!r}, not this interpreter's")
    if "executable" in values and Path(values["executable"]).resolve() not in here:
        raise Untrusted(f"pyvenv.cfg's executable is {values['executable']!r}, not this interpreter")
    for link in sorted((venv / "bin").glob("python*")):
        if not link.is_symlink() or link.resolve() not in here:
            raise Untrusted(f"bin/{link.name} is not a link to this interpreter")
    if not (venv / "bin" / "python").is_symlink():
        raise Untrusted("bin/python is missing")
    lib64 = venv / "lib64"
    if lib64.exists() or lib64.is_symlink():
        if not lib64.is_symlink() or os.readlink(lib64) not in ("lib", str(venv / "lib")):
            raise Untrusted("lib64 is not the link to lib that venv makes")


def _records(site):
    """{absolute path: sha256 entry or ''} from every RECORD in site-packages."""
    recorded = {}
    for record in sorted(site.glob("*.dist-info/RECORD")):
        with open(record, newline="") as f:
            for row in csv.reader(f):
                if row:
                    recorded[Path(os.path.normpath(site / row[0]))] = row[1] if len(row) > 1 else ""
    return recorded


def _file_hash(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


def verify(venv, requirements=None, digest=None, purge_bytecode=False):
    """The venv's digest when every check holds; Untrusted, naming the first that fails, otherwise."""
    venv = Path(venv).absolute()
    if not venv.is_dir() or venv.is_symlink():
        raise Untrusted(f"{venv} is not a folder")
    _check_layout(venv)
    site = _site_packages(venv)
    if purge_bytecode:
        for cache in sorted(venv.rglob("__pycache__"), reverse=True):
            if cache.is_dir() and not cache.is_symlink():
                shutil.rmtree(cache)
    recorded = _records(site)
    allowed_links = {venv / "lib64"} | {p for p in (venv / "bin").glob("python*")}
    for dirpath, dirnames, filenames in os.walk(venv):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                if path not in allowed_links:
                    raise Untrusted(f"{path.relative_to(venv)} is a link")
                continue
            if name in dirnames:
                continue
            rel = path.relative_to(venv)
            if rel.as_posix() == "pyvenv.cfg" or (rel.parent.as_posix() == "bin" and name in ACTIVATE):
                continue
            if path.suffix == ".pyc" and not purge_bytecode:
                continue                      # a read-only look (tests): bytecode is not vouched for
            if path not in recorded:
                raise Untrusted(f"{rel} belongs to no installed distribution")
            entry = recorded[path]
            if entry:
                if _file_hash(path) != entry:
                    raise Untrusted(f"{rel} differs from what its distribution's RECORD says")
            elif not name == "RECORD":
                raise Untrusted(f"{rel} has no hash in its RECORD")
    installed = {}
    for meta in site.glob("*.dist-info/METADATA"):
        fields = dict(re.findall(r"^(Name|Version): (.+)$", meta.read_text(errors="replace"), re.M))
        installed[_name(fields.get("Name", ""))] = fields.get("Version", "")
    for name, specs in (pins(requirements) if requirements else {}).items():
        have = installed.get(name)
        if have is None:
            raise Untrusted(f"{name} is not installed (the course requires it)")
        for op, version in specs:
            if op not in OPERATORS or not OPERATORS[op](_release(have), _release(version.rstrip(".*"))):
                raise Untrusted(f"{name} {have} is installed; the course pins {op}{version}")
    found = venv_digest(site, recorded)
    if digest and found != digest:
        raise Untrusted(f"its digest is {found}, not the course's {digest}")
    return found


def venv_digest(site, recorded=None):
    """sha256 over the recorded (path, hash) pairs inside site-packages: the same for one set of
    wheels and one Python, wherever the venv lies (scripts in bin/ hold its path, so they are out)."""
    recorded = _records(site) if recorded is None else recorded
    lines = sorted(f"{p.relative_to(site).as_posix()}\t{h}" for p, h in recorded.items()
                   if h and p.is_relative_to(site))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.venvcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("venv")
    parser.add_argument("--requirements", help="the course's requirements.txt, whose pins must hold")
    parser.add_argument("--digest", help="the digest the course trusts (COURSE_GRADER_VENV_DIGEST)")
    parser.add_argument("--purge-bytecode", action="store_true", help="delete every __pycache__ first")
    parser.add_argument("--print-digest", action="store_true", help="print the venv's digest and stop")
    args = parser.parse_args(argv)
    try:
        if args.print_digest:
            print(venv_digest(_site_packages(Path(args.venv).absolute())))
            return 0
        found = verify(args.venv, args.requirements, args.digest, args.purge_bytecode)
    except (Untrusted, OSError, UnicodeDecodeError) as e:
        print(f"venvcheck: {args.venv} is not trusted: {e}", file=sys.stderr)
        return 1
    print(f"venvcheck: {args.venv} verified, digest {found}" + ("" if args.digest else
          " (no course digest set: RECORD and pins checked; COURSE_GRADER_VENV_DIGEST pins every file)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
