"""Runs a GitHub Actions workflow's job on this machine, step by step, the way a runner would.

`run:` steps run in bash with GITHUB_OUTPUT, GITHUB_ENV, GITHUB_SHA and GITHUB_WORKSPACE; `if:`,
`env:`, `with:` and `working-directory:` are evaluated (`${{ }}` expressions: contexts, `||`,
`&&`, `==`, `!=`, `!`, always(), success(), hashFiles()). The actions the Classroom workflow uses
are emulated: actions/checkout (the student's repository, a git clone of its HEAD, shallow
unless fetch-depth is 0; or the course's with a token),
actions/setup-python (this interpreter), actions/cache/restore and save (a folder of saved keys),
and classroom-resources/autograding-grading-reporter, which runs the real released bundle under
node. Used by tests/test_classroom.py and bench/classroom_speed.py.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
REPORTER = REPO.parent / "shared" / "vendor" / "autograding-grading-reporter" / "dist" / "main.js"


class Ctx(dict):
    """A context object: attribute access, '' for anything missing (as in GitHub expressions)."""

    def __getattr__(self, name):
        value = self.get(name.replace("__dash__", "-"), "")
        return Ctx(value) if isinstance(value, dict) else value


class Job:
    def __init__(self, workflow, workspace, student, course=None, variables=None, secrets=None,
                 cache_dir=None, sha="5f2c9a1e0b7d", overrides=None, reporter=REPORTER):
        data = yaml.safe_load(Path(workflow).read_text())
        self.workflow = data
        self.job = next(iter(data["jobs"].values()))
        self.workspace = Path(workspace)
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.student, self.course = Path(student), course and Path(course)
        self.vars, self.secrets = dict(variables or {}), dict(secrets or {})
        self.cache_dir = Path(cache_dir or self.workspace.parent / "actions-cache")
        self.sha = sha
        self.overrides = overrides or {}      # step name prefix -> fn(job, step): outcome
        self.reporter = Path(reporter)
        self.env = {}
        self.steps = {}
        self.log = []                         # (step name, outcome, seconds, output)
        self.home = self.workspace.parent / "home"
        self.home.mkdir(exist_ok=True)
        self.failed = False

    # --- expressions ------------------------------------------------------------------------

    def _contexts(self):
        steps = {k: Ctx(outputs=Ctx(v["outputs"]), outcome=v["outcome"], conclusion=v["outcome"])
                 for k, v in self.steps.items()}
        return {"github": Ctx(sha=self.sha, workspace=str(self.workspace), actor="student",
                              token="emulated-github-token"),
                "runner": Ctx(os="Linux"), "vars": Ctx(self.vars), "secrets": Ctx(self.secrets),
                "env": Ctx({**self.workflow.get("env_evaluated", {}), **self.env}), "steps": Ctx(steps)}

    def evaluate(self, expr):
        def hash_files(*patterns):
            h = hashlib.sha256()
            for pattern in patterns:
                for p in sorted(self.workspace.glob(pattern)):
                    if p.is_file():
                        h.update(hashlib.sha256(p.read_bytes()).digest())
            return h.hexdigest()
        py = expr.strip()
        py = re.sub(r"(?<![=!])!(?!=)", " not ", py)
        py = py.replace("&&", " and ").replace("||", " or ")
        py = re.sub(r"\b([a-z_]+(?:\.[\w-]+)+)", lambda m: m.group(1).replace("-", "__dash__"), py)
        ns = {**self._contexts(), "always": lambda: True, "success": lambda: not self.failed,
              "failure": lambda: self.failed, "cancelled": lambda: False, "hashFiles": hash_files,
              "true": True, "false": False}
        return eval(py, {"__builtins__": {}}, ns)        # noqa: S307 (our own workflow file)

    def substitute(self, text):
        if not isinstance(text, str):
            return text
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(self.evaluate(m.group(1))), text)

    # --- running ----------------------------------------------------------------------------

    def run(self):
        wf_env = {k: self.substitute(v) for k, v in (self.workflow.get("env") or {}).items()}
        self.workflow["env_evaluated"] = wf_env
        self.env.update(wf_env)
        for step in self.job["steps"]:
            name = step.get("name", step.get("uses", "step"))
            cond = step.get("if", "success()")
            cond = cond if "success()" in cond or "always()" in cond or "failure()" in cond else \
                f"success() && ({cond})"
            if not self.evaluate(cond.replace("${{", "").replace("}}", "")):
                self._record(step, name, "skipped", 0.0, "", {})
                continue
            start = time.perf_counter()
            outputs, text = {}, ""
            override = next((fn for prefix, fn in self.overrides.items() if name.startswith(prefix)), None)
            if override:          # fn(job, step) -> (outcome, text) or (outcome, text, outputs)
                outcome, text, *rest = override(self, step)
                outputs = rest[0] if rest else {}
            elif "uses" in step:
                outcome, outputs, text = self._uses(step)
            else:
                outcome, outputs, text = self._run(step)
            self._record(step, name, outcome, time.perf_counter() - start, text, outputs)
            if outcome == "failure":
                self.failed = True
        return self

    def _record(self, step, name, outcome, seconds, text, outputs):
        if "id" in step:
            self.steps[step["id"]] = {"outputs": outputs, "outcome": outcome}
        self.log.append((name, outcome, seconds, text))

    def _step_env(self, step):
        env = {k: self.substitute(v) for k, v in (step.get("env") or {}).items()}
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_"))}
        path = os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")])
        return {**base, "PATH": path, "HOME": str(self.home), "CI": "true", "GITHUB_ACTIONS": "true",
                "GITHUB_SHA": self.sha, "GITHUB_WORKSPACE": str(self.workspace), **self.env, **env}

    def _files(self, env):
        files = {}
        for key in ("GITHUB_OUTPUT", "GITHUB_ENV"):
            f = self.workspace.parent / f"{key.lower()}_{len(self.log)}"
            f.write_text("")
            env[key] = files[key] = str(f)
        return files

    def _run(self, step):
        env = self._step_env(step)
        files = self._files(env)
        cwd = self.workspace / self.substitute(step.get("working-directory", "."))
        script = self.substitute(step["run"])
        timeout = 60 * float(step.get("timeout-minutes", 360))
        try:
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd,
                                  env=env, capture_output=True, text=True, timeout=timeout)
            outcome, text = ("success" if proc.returncode == 0 else "failure"), proc.stdout + proc.stderr
        except (subprocess.TimeoutExpired, FileNotFoundError, NotADirectoryError) as e:
            outcome, text = "failure", str(e)
        self.env.update(_read_pairs(Path(files["GITHUB_ENV"])))
        return outcome, _read_pairs(Path(files["GITHUB_OUTPUT"])), text

    def _uses(self, step):
        action = step["uses"].split("@")[0]
        args = {k: self.substitute(v) for k, v in (step.get("with") or {}).items()}
        if action == "actions/checkout":
            dest = self.workspace / args.get("path", ".")
            if args.get("repository"):
                if not (self.course and args.get("token") and args.get("ref")):
                    return "failure", {}, "checkout of the course grader: no repository, ref or token"
                source = self.course
            else:
                source = self.student
            if (source / ".git").is_dir():    # a repository: its HEAD, with all history only at fetch-depth 0
                dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain"], capture_output=True,
                                       text=True, timeout=60).stdout
                if dirty:       # a test that forgot to commit would grade files no push ever sent
                    return "failure", {}, f"{source} has uncommitted changes (a checkout gets HEAD): {dirty[:300]}"
                depth = [] if str(args.get("fetch-depth", "1")) == "0" else ["--depth", "1"]
                proc = subprocess.run(["git", "clone", "-q", *depth, f"file://{source}", str(dest)],
                                      capture_output=True, text=True, timeout=120)
                if proc.returncode:
                    return "failure", {}, proc.stderr
                return "success", {}, f"cloned {source} into {dest} ({'shallow' if depth else 'every commit'})"
            shutil.copytree(source, dest, dirs_exist_ok=True, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", ".git", ".venv", ".grade"))
            return "success", {}, f"checked out {source} into {dest}"
        if action == "actions/setup-python":
            return "success", {"python-version": "%d.%d.%d" % sys.version_info[:3]}, sys.executable
        if action in ("actions/cache/restore", "actions/cache/save", "actions/cache"):
            key = args.get("key", "")
            stored = self.cache_dir / hashlib.sha256(key.encode()).hexdigest()[:16]
            target = self.workspace / args["path"]
            if action.endswith("restore"):
                if stored.exists():
                    shutil.copytree(stored, target, symlinks=True, dirs_exist_ok=True)
                    return "success", {"cache-hit": "true", "cache-primary-key": key}, f"restored {key}"
                return "success", {"cache-hit": "", "cache-primary-key": key}, f"cache miss: {key}"
            if not stored.exists() and target.exists():
                shutil.copytree(target, stored, symlinks=True)
            return "success", {}, f"saved {key}"
        if action == "classroom-resources/autograding-grading-reporter":
            env = self._step_env(step)
            env["INPUT_RUNNERS"] = args["runners"]
            self._files(env)
            proc = subprocess.run(["node", str(self.reporter)], env=env, capture_output=True, text=True,
                                  timeout=120)
            return ("success" if proc.returncode == 0 else "failure"), {}, proc.stdout + proc.stderr
        return "failure", {}, f"no emulation for {step['uses']}"


def _read_pairs(path):
    """KEY=value lines and KEY<<DELIMITER blocks, as Actions reads GITHUB_OUTPUT and GITHUB_ENV."""
    out, lines = {}, path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            j = lines.index(delim, i + 1)
            out[key] = "\n".join(lines[i + 1:j])
            i = j + 1
            continue
        if "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
        i += 1
    return out


def emulated_venv(job, step):
    """Stands in for the install step: a 'virtualenv' whose python is this interpreter."""
    venv = Path(job.substitute(job.env.get("GRADER_VENV", str(job.workspace / ".grader-venv"))))
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    link = venv / "bin" / "python"
    if not link.exists():      # a wrapper, not a link: a linked venv python would lose its site-packages
        link.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        link.chmod(0o755)
    if "id" in step:
        job.steps[step["id"]] = {"outputs": {}, "outcome": "success"}
    return "success", f"emulated: {link} -> {sys.executable}"


def reporter_figures(text):
    """What the reporter showed: ({runner: table score}, {runner: 'Total points' value}, notice)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    table = {m.group(1): m.group(2) for m in re.finditer(r"│\s*(ex\d\d|audit)\s*│\s*(\S+)\s*│\s*\S+\s*│", text)}
    totals = dict(re.findall(r"Total points for (\w+): (\S+)/10", text))
    notice = re.search(r"::notice title=Autograding complete::Points (\S+)/(\S+)", text)
    table_total = re.search(r"│\s*Total:\s*│\s*(\S+)\s*│\s*(\S+)\s*│", text)
    return table, totals, notice and notice.groups(), table_total and table_total.groups()
