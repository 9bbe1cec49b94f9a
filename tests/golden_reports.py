"""Golden reports: the text and JSON reports of one fixed grade, stored in tests/golden/.

One submission holds a representative file for each exercise (the reference, the stub, a partial
file, mutants with named mistakes, a crash, a NaN, a forbidden helper, a file that does not load,
a missing file), graded once at a fixed seed with every failure shown. What depends on the
machine or the moment (the submission's folder, the sandbox's layers, times) is normalised.

`make golden` (python tests/golden_reports.py) writes tests/golden/ from this run: review the diff.
"""
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import REPO, grade  # noqa: E402
from mutation import MUTANTS, variants  # noqa: E402

GOLDEN = REPO / "tests" / "golden"
SEED = 20240
FOLDER = "<submission>"
LAYERS = "<the sandbox's layers on this machine>"
VOLATILE = ("time", "seconds", "execution_time", "duration")


def _mutant(stem):
    return next(v.text for v in variants(MUTANTS) if v.path.stem == stem)


# exercise file -> (what the case shows, its source: text, or None for a missing file)
CASES = {
    "01_project.py": ("the reference: full marks", (REPO / "solutions" / "01_project.py").read_text()),
    "02_split_heads.py": ("the stub: not started", (REPO / "exercises" / "02_split_heads.py").read_text()),
    "03_scores.py": ("a mutant with a named mistake", _mutant("03_scores__no_scaling")),
    "04_mask.py": ("a mutant with a named mistake, on masking", _mutant("04_mask__top_left")),
    "05_softmax.py": ("a partial file: right except NaN on a slice of all -inf",
                      "def softmax(x, dim=-1):\n    e = (x - x.amax(dim, keepdim=True)).exp()\n"
                      "    return e / e.sum(dim, keepdim=True)\n"),
    "06_weight_values.py": ("a crash: the process dies in the call",
                            "import os\n\n\ndef weight_values(probs, v):\n    os._exit(3)\n"),
    "07_merge_heads.py": ("an uncatalogued mutant that raises", _mutant("07_merge_heads__view_after_transpose")),
    "08_output_projection.py": ("a forbidden helper",
                                "import torch.nn.functional as F\n\n\ndef output_projection(x, w_o, b_o=None):\n"
                                "    return F.linear(x, w_o, b_o)\n"),
    "09_scaled_dot_product_attention.py": ("a NaN on fully masked rows, named",
                                           _mutant("09_scaled_dot_product_attention__minus_inf_fill")),
    "10_multi_head_attention.py": ("a mutant of the module", _mutant("10_multi_head_attention__averaged_weights")),
    "11_grouped_query_attention.py": ("a file that does not load", "def grouped_query_attention(q, k, v:\n"),
    "12_positional_encoding.py": ("a missing file", None),
    "14_flash_attention.py": ("a mutant of the tiled loop", _mutant("14_flash_attention__no_rescale")),
    "15_attention_backward.py": ("a forbidden import", _mutant("15_attention_backward__torch_autograd")),
}


def _normalise(text, folder):
    return text.replace(str(folder), FOLDER)


def _strip(o):
    if isinstance(o, dict):
        return {k: _strip(v) for k, v in o.items() if k not in VOLATILE}
    if isinstance(o, list):
        return [_strip(v) for v in o]
    return o


def produce():
    """{file name in tests/golden/: content} from one grade of the cases."""
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        folder = Path(tmp)
        for name, (_, source) in CASES.items():
            if source is not None:
                (folder / name).write_text(source)
        ids = [name[:2] for name in CASES]
        code, report, text = grade(folder, *ids, seed=SEED, extra=["--all-failures"])
    if report is None:
        raise RuntimeError(f"the grader wrote no JSON report (exit {code}):\n{text[-3000:]}")
    lines = _normalise(text, folder).splitlines()
    lines = [f"isolation: {LAYERS}" if line.startswith("isolation: ") else line for line in lines]
    report["isolation"]["layers"] = [LAYERS]
    data = json.loads(_normalise(json.dumps(_strip(report)), folder))
    return {"report.txt": "\n".join(lines) + "\n",
            "report.json": json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"}


README = REPO / "README.md"
EXAMPLE_START, EXAMPLE_END = "<!-- example report: make golden writes it -->", "<!-- end of the example report -->"


def example(report_txt):
    """The README's example: 03's lines of the golden report (its no-scale mutant), down to the end of its
    first failing check, each line cut at 110 characters."""
    lines = report_txt.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("03 "))
    shown = [lines[start]]
    for line in lines[start + 1:]:
        if line.lstrip()[:1] in ("✗", "–") and len(shown) > 1 or not line.startswith("     "):
            break
        shown.append(line)
    cut = [line if len(line) <= 110 else line[:107] + "..." for line in shown]
    return "```\n" + "\n".join(cut) + "\n```"


def readme_with_example(report_txt, text):
    """The README's text with its example block rewritten from the golden report."""
    head, rest = text.split(EXAMPLE_START, 1)
    _, tail = rest.split(EXAMPLE_END, 1)
    return f"{head}{EXAMPLE_START}\n{example(report_txt)}\n{EXAMPLE_END}{tail}"


def write():
    GOLDEN.mkdir(exist_ok=True)
    produced = produce()
    for name, content in produced.items():
        (GOLDEN / name).write_text(content)
        print(f"wrote {(GOLDEN / name).relative_to(REPO)}: review it with git diff {GOLDEN.relative_to(REPO)}")
    README.write_text(readme_with_example(produced["report.txt"], README.read_text()))
    print("wrote the example report in README.md from it")


if __name__ == "__main__":
    write()
