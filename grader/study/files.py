"""The exercise files: make reset EX=NN (back to the stub) and make solution EX=NN (the reference)."""
from ..exercises import SOLUTIONS_DIR
from . import state
from .errors import Problem
from .state import full_marks, rel
from .stubs import pristine_stub


def reset(ex):
    drill = state.drill_state()
    if drill:
        raise Problem(f"a drill on {drill['id']} is running: end it first (make drill-done)")
    stub = pristine_stub(ex)
    path = ex.stub
    saved = None
    if path.is_file():
        if path.read_bytes() == stub:
            print(f"exercises/{ex.filename} is the fresh stub already: nothing to reset.")
            return 0
        saved = state.back_up(path, ex.stem)
    state.write_atomic(path, stub)
    state.forget_result(ex.id)          # that grade was of the file now gone
    state.forget_hints(ex.id)
    print(f"exercises/{ex.filename} is the fresh stub again."
          + (f" Your version is kept in {rel(saved)}." if saved else ""))
    return 0


def solution(ex, force):
    if not SOLUTIONS_DIR.is_dir():
        raise Problem("this copy has no solutions/ folder (a student copy ships without the references): "
                      "there is no reference to show here")
    if not ex.solution.is_file():
        raise Problem(f"there is no reference for {ex.label} here (solutions/{ex.filename} is missing)")
    entry = state.last_results().get(ex.id)
    earned = full_marks(entry) or bool(state.history().get(ex.id, {}).get("completed"))
    if not earned and not force:
        last = f"your last grade: {entry.get('score', 0):g}/{entry.get('max_score', 10):g}" if entry else "not graded yet"
        raise Problem(f"not yet: the reference for {ex.id} opens once you have full marks ({last}); "
                      f"make hint EX={ex.id} helps, and make solution EX={ex.id} FORCE=1 shows it anyway")
    state.note_solution_seen(ex.id, forced=not earned)
    print(f"# solutions/{ex.filename}" + ("" if earned else "  (shown before full marks, as asked)"))
    print()
    print(ex.solution.read_text(), end="")
    return 0
