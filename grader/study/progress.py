"""make progress: status, best score, blank-file drills and their trend, per exercise."""
from ..exercises import with_stubs
from ..report import PUBLIC_ONLY_NOTE, public_only
from ..status import Status
from . import state
from .grading import clock
from .state import full_marks


def trend(record):
    drills = record.get("drills", [])[-5:]
    if not drills:
        return ""
    marks = [clock(d["seconds"]) if d.get("seconds") is not None else "✗" for d in drills]
    times = [d["seconds"] for d in record.get("drills", []) if d.get("seconds") is not None]
    arrow = ""
    if len(times) >= 2:
        arrow = "  faster" if times[-1] < times[-2] else ("  slower" if times[-1] > times[-2] else "  same")
    return " → ".join(marks) + arrow


def progress():
    results = state.last_results()
    hist = state.history()
    drilling = state.drill_state({}).get("id")
    known = with_stubs()
    width = max([len(e.name) for e in known] + [8])
    from ..interview import progress_columns, progress_footer    # blank-file drills and interviews
    rows = [f"  NN {'exercise':<{width}}  {'status':<15} {'blank':<5} {'median':>6}  {'best':>6}  {'best drill':>10}  "
            f"drills (oldest → newest)"]
    done = points = top = 0
    public = public_only()
    for e in known:
        record = hist.get(e.id, {})
        entry = results.get(e.id)
        if e.id == drilling:
            status = "in a drill"
        elif not e.graded:
            status = "no tests yet"
        elif entry:
            status = entry.get("status", "graded")
        else:
            status = "not graded"
        best = record.get("best")
        max_score = record.get("max", 10.0)
        if best is not None and best >= max_score and e.id != drilling and status != Status.COMPLETE:
            status = "had full marks"      # the header counts best scores: the row says so too
        if public:                         # a graded template: only the course's hidden tests give marks
            status = {Status.COMPLETE: "public tests pass", "had full marks": "passed before"}.get(status, status)
        top += max_score
        if best is not None:
            points += best
            done += best >= max_score
        bd = state.best_drill(record) if record else None
        rows.append(f"  {e.id} {e.name:<{width}}  {status:<15} {progress_columns(record)}  "
                    f"{(f'{best:g}' if best is not None else '—'):>6}  "
                    f"{(clock(bd) if bd is not None else '—'):>10}  {trend(record) if record else ''}".rstrip())
    n = len(known)
    filled = round(20 * done / n) if n else 0
    drills = sum(len(s.get("drills", [])) for s in hist.values())
    if public:
        print(PUBLIC_ONLY_NOTE)
    print(f"Progress  {'█' * filled}{'·' * (20 - filled)}  {done}/{n} "
          f"{'passing every public test' if public else 'with full marks'} (best) · "
          f"{round(points, 2):g}/{top:g} best points · {drills} drill{'s' * (drills != 1)}")
    print()
    print("\n".join(rows))
    for line in progress_footer():
        print(line)
    nxt = next((e for e in known if e.graded and not full_marks(results.get(e.id))), None)
    print()
    if nxt:
        print(f"Next: exercises/{nxt.filename} (make watch grades it on every save; make hint EX={nxt.id} helps).")
    else:
        print(("Every public test passes" if public else "Every exercise has full marks") +
              ". Drill them against the clock: make drill EX=10.")
    return 0
