"""Push-to-grade time of the Classroom workflow, emulated step by step on this machine.

python bench/classroom_speed.py [OLD_REF]

Runs today's workflow and the one of OLD_REF (default: the commit before the one-step workflow)
through tests/workflow_emulator.py on one partial submission, with the virtualenv already cached
(the install step is what bench/install_speed.sh measures), and prints each one's time from
checkout to the reporter's notice, the notice and the table. Needs node and the reporter bundle.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from grader.template import write  # noqa: E402
from workflow_emulator import Job, emulated_venv, reporter_figures  # noqa: E402

OLD_REF = "b1c22dd"
PARTIAL_SOFTMAX = '''
def softmax(x, dim=-1):
    e = (x - x.amax(dim, keepdim=True)).exp()
    return e / e.sum(dim, keepdim=True)
'''


def student(root):
    repo = write(root, self_study=True)         # today's template: an older course may lack template/
    for p in sorted((REPO / "solutions").glob("*.py"))[:9]:
        shutil.copy(p, repo / "exercises")
    (repo / "exercises" / "05_softmax.py").write_text(PARTIAL_SOFTMAX)
    return repo


def emulate(workflow, work, repo, course):
    start = time.perf_counter()
    job = Job(workflow, work / "ws", repo, course=course, sha="1c0ffee5d2",
              variables={"COURSE_GRADER_REPO": "teacher/course", "COURSE_GRADER_REF": "0" * 40},
              secrets={"COURSE_GRADER_TOKEN": "read-only"}, overrides={"Install": emulated_venv}).run()
    return time.perf_counter() - start, job


def main():
    old_ref = sys.argv[1] if len(sys.argv) > 1 else OLD_REF
    os.environ.setdefault("GRADER_ALLOW_WEAK_ISOLATION", "1")
    os.environ.setdefault("NO_COLOR", "1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "old-course"
        old.mkdir()
        archive = subprocess.run(["git", "archive", old_ref], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        for name, workflow, course in (("before (one step per exercise)", old / ".github/workflows/classroom.yml", old),
                                       ("after (one grading step)", REPO / ".github/workflows/classroom.yml", REPO)):
            work = tmp / name.split()[0]
            repo = student(work / "student")
            seconds, job = emulate(workflow, work, repo, course)
            text = job.log[-1][3]
            _, _, notice, _ = reporter_figures(text)
            table = text[text.find("Test runner summary"):].split("🏆")[0]
            print(f"== {name}: push to grade {seconds:.1f} s, notice: Points {'/'.join(notice or ('?', '?'))}")
            for step, outcome, secs, _ in job.log:
                if secs >= 0.5:
                    print(f"   {step}: {secs:.1f} s ({outcome})")
            print(table.strip())
            print(next((ln for ln in text.splitlines() if "Total points for ex05" in ln), ""))


if __name__ == "__main__":
    main()
