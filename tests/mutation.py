"""The mutation suite: known-wrong files must lose points (and be named), correct ones must not.

tests/mutants/NN_name__slug.patch   the reference with one realistic bug, as a unified diff against
                                    solutions/NN_name.py (tests/patches.py applies it, strictly); first line
                                    `# mistake: <key of the Mistake it is>  (its title)` or `# uncatalogued: ...`
tests/alternatives/NN_name__slug.py a correct solution written differently: full marks

To add a mutant, copy the reference, make the bug, put the header on top, and
`python tests/patches.py tests/mutants/NN_name__slug.py` turns it into its patch.

`python tests/mutation.py [SEED ...] [--ex NN,NN]` (or `make mutants SEEDS="1 2" EX="09 14"`)
prints the table and the totals; a mutant counts as caught only if it loses points on every seed.
"""
import json
import os
import re
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import REPO, by_id, run_grader  # noqa: E402
import patches  # noqa: E402

MUTANTS = REPO / "tests" / "mutants"
ALTERNATIVES = REPO / "tests" / "alternatives"


@dataclass
class Variant:
    path: Path             # the .patch of a mutant, the .py of an alternative
    exercise_file: str     # "05_softmax.py"
    mistake: str           # the key the report must name in tests[].mistake ("" when uncatalogued)
    text: str              # the source the grader sees

    @property
    def id(self):
        return self.exercise_file[:2]


@dataclass
class Outcome:
    variant: Variant
    seed: int
    score: float
    named: bool
    diagnosis: str
    first_mistake: str = None    # the key of the first failing test's named mistake
    entry: dict = None           # the exercise's part of the JSON report


def source(path):
    """A file's text, or a patch applied to its reference (PatchError when it does not apply)."""
    if path.suffix == ".patch":
        return patches.apply(path.read_text(), patches.reference_of(path.name).read_text(), path.name)
    return path.read_text()


def variants(folder):
    found = []
    for path in sorted([*folder.glob("[0-9][0-9]_*__*.py"), *folder.glob("[0-9][0-9]_*__*.patch")]):
        text = source(path)
        first = text.splitlines()[0] if text else ""
        m = re.match(r"#\s*mistake:\s*(\w+)", first)
        found.append(Variant(path, path.name.split("__")[0] + ".py", m.group(1) if m else "", text))
    return found


def rounds(items):
    """Groups files so that each grader run holds at most one file per exercise."""
    per_exercise = defaultdict(list)
    for v in items:
        per_exercise[v.exercise_file].append(v)
    return [[vs[i] for vs in per_exercise.values() if i < len(vs)]
            for i in range(max((len(vs) for vs in per_exercise.values()), default=0))]


def run(items, seeds):
    """Grades every file on every seed: for each seed, one `python -m grader batch` whose students
    are the rounds (so one torch import and one zygote grade them all)."""
    groups = rounds(items)
    ids = sorted({v.id for v in items})
    outcomes = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            root, reports = Path(tmp) / "rounds", Path(tmp) / "reports"
            for i, group in enumerate(groups):
                (root / f"round{i:02d}").mkdir(parents=True)
                for v in group:
                    (root / f"round{i:02d}" / v.exercise_file).write_text(v.text)
            code, text = run_grader(["batch", str(root), *ids, "--csv", str(Path(tmp) / "grades.csv"),
                                     "--reports", str(reports), "--seed", str(seed)],
                                    env={**os.environ, "NO_COLOR": "1"})
            for i, group in enumerate(groups):
                report = reports / f"round{i:02d}.json"
                if not report.exists():
                    said = (reports / f"round{i:02d}.txt").read_text() if (reports / f"round{i:02d}.txt").exists() else ""
                    raise RuntimeError(f"round {i} ({', '.join(v.path.name for v in group)}) was not graded "
                                       f"(batch exit {code}): {said or text[-2000:]}")
                outcomes += [outcome(v, seed, by_id(json.loads(report.read_text()))[v.id]) for v in group]
    return outcomes


def outcome(v, seed, ex):
    """What one exercise's part of the report says of the file `v`."""
    failing = [t for t in ex["tests"] if not t["passed"]]
    messages = [t["message"] for t in failing] + [ex.get("error", "")]
    keys = [t.get("mistake") for t in failing if t.get("mistake")]
    named = bool(v.mistake) and v.mistake in keys
    diagnosis = keys[0] if keys else (next((m for m in messages if m), "").splitlines() or [""])[0]
    return Outcome(v, seed, ex["score"], named, diagnosis[:70], keys[0] if keys else None, ex)


def first_hint_speaks_to(o):
    """Whether the first `make hint` after this grade is the `## when:` section for the mutant's key."""
    from grader import study
    hints = REPO / "exercises" / "hints" / o.variant.exercise_file.replace(".py", ".md")
    _, whens = study.parse_hints(hints.read_text())
    hits = study.targeted(whens, o.entry or {})
    return bool(hits) and o.variant.mistake in study.triggers(hits[0][2])


def summary(mutants):
    """Per mutant, over the seeds: the categories it fails (✗, never those only "not checked"), its mean and
    minimum score and its spread (the most minus the least: 0 when every seed gives the same score); then
    the corpus: mean, minimum, how many score 0 on every seed, how many move between seeds."""
    by_file = defaultdict(list)
    for o in mutants:
        by_file[o.variant.path.name].append(o)
    print(f"\n{'mutant':<52} {'mean':>5} {'min':>5} {'spread':>6}  categories failed")
    means, spreads = [], []
    for name, outs in by_file.items():
        scores = [o.score for o in outs]
        failed = sorted({t["category"] for o in outs for t in (o.entry or {}).get("tests", [])
                         if t.get("status") == "failed"})
        mean, spread = sum(scores) / len(scores), max(scores) - min(scores)
        means.append(mean)
        spreads.append(spread)
        print(f"{name:<52} {mean:5.2f} {min(scores):5.2f} {spread:6.2f}  {' '.join(failed) or '-'}")
    if means:
        print(f"corpus: {len(means)} mutants, mean {sum(means) / len(means):.2f}, minimum "
              f"{min(o.score for o in mutants):.2f}, at 0 on every seed {sum(m == 0 for m in means)}, "
              f"spread > 0 {sum(s > 0 for s in spreads)} (largest {max(spreads):.2f})\n")


def main(seeds, only=()):
    pick = (lambda vs: [v for v in vs if v.id in only]) if only else (lambda vs: vs)
    mutants = run(pick(variants(MUTANTS)), seeds)
    print(f"{'mutant':<52} {'seed':>4} {'score':>6}  diagnosis")
    for o in mutants:
        mark = "named" if o.named else ("caught" if o.score < 10 else "MISSED")
        print(f"{o.variant.path.name:<52} {o.seed:>4} {o.score:6.1f}  [{mark}] {o.diagnosis}")
    summary(mutants)
    caught = sum(o.score < 10 for o in mutants)
    catalogued = [o for o in mutants if o.variant.mistake]
    named = sum(o.named for o in catalogued)
    hinted = [o for o in catalogued if first_hint_speaks_to(o)]
    for o in catalogued:
        if o not in hinted:
            print(f"first hint misses: {o.variant.path.name} seed {o.seed} (first named: {o.first_mistake})")
    alts = run(pick(variants(ALTERNATIVES)), seeds)
    print()
    for o in alts:
        print(f"{o.variant.path.name:<52} {o.seed:>4} {o.score:6.1f}  {'full marks' if o.score == 10 else o.diagnosis}")
    full = sum(o.score == 10 for o in alts)
    print()
    files = {o.variant.path.name for o in mutants}
    every = {f for f in files if all(o.score < 10 for o in mutants if o.variant.path.name == f)}
    for f in sorted(files - every):
        lost = [o.seed for o in mutants if o.variant.path.name == f and o.score >= 10]
        print(f"MISSED on some seed: {f} (seeds {' '.join(map(str, lost))})")
    print(f"mutants caught on every seed: {len(every)}/{len(files)}")
    print(f"mutants caught:           {caught}/{len(mutants)} ({100 * caught / max(len(mutants), 1):.0f}%)")
    print(f"catalogued mistakes named: {named}/{len(catalogued)} ({100 * named / max(len(catalogued), 1):.0f}%)")
    print(f"first hint speaks to it:  {len(hinted)}/{len(catalogued)} ({100 * len(hinted) / max(len(catalogued), 1):.0f}%)")
    print(f"alternatives full marks:  {full}/{len(alts)} ({100 * full / max(len(alts), 1):.0f}%)")
    print(f"seeds: {' '.join(map(str, seeds))}")
    return 0 if caught == len(mutants) and full == len(alts) and named >= 0.9 * len(catalogued) else 1


if __name__ == "__main__":
    args, only = sys.argv[1:], []
    if "--ex" in args:
        i = args.index("--ex")
        only = [x.zfill(2) for x in args[i + 1].replace(",", " ").split()]
        args = args[:i] + args[i + 2:]
    sys.exit(main([int(s) for s in args] or [1, 2], only))
