"""A mock interview in the terminal: make interview.

    python -m grader.interview [--follow-up NN] [--seed S]

Twenty minutes, hard cap, from blank files (grader/blank.py), graded on every save:
  part one   exercise 10, multi-head attention with causal and padding masks, equal to
             nn.MultiheadAttention on every query that sees a key (and finite where none is seen);
  part two   if part one reaches full marks with time left: one follow-up drawn at random
             (11 GQA, 12 RoPE, 13 the KV cache or 14 tiled attention), from its blank stub;
then a few talking-point questions (grader/quiz/), and a scorecard: the time to full marks
against the bands (a fluent candidate takes 12-18 minutes; past 25, keep drilling), narration
coverage and accuracy (when the grader reports it), the follow-up's result, the quiz score and
the mistakes the grader named along the way.

The learner's own files are kept and put back exactly as a drill does (grader/study/drill.py:
begin_drill and end_drill, under the drill's lock): on full marks, time's up, Ctrl-C, SIGTERM/SIGHUP and
`make drill-done`; after a SIGKILL, the next study command puts the file back, and the next
interview records the cut-short one. Each part is also recorded as a drill of its exercise, so
`make progress` counts it toward the five blank-file completions.

Kept in .grade/interview/: history.json (every interview's scorecard) and scorecard.txt (the
last one). Environment: STUDY_INTERVIEW_SECONDS (the cap, default 1200), INTERVIEW_QUIZ_COUNT
(questions, default 5), STUDY_POLL (seconds between checks for a save).

This module imports no torch.
"""
import argparse
import os
import random
import signal
import statistics
import sys
import time

from . import quiz
from .exercises import with_stubs
from .status import Outcome
from .study.drill import (STOP_SIGNALS, already_running, begin_drill, end_drill_whatever_happens, outcome_of,
                          recover, stop)
from .study.errors import Problem, Stop, Usage
from .study.grading import Screen, clock, grade, poll_seconds, signature
from .study.state import (ATTEMPTS, INTERVIEW_HISTORY, INTERVIEW_STATE, SCORECARD, Lock, fold_last, full_marks,
                          load_json, record_drill, rel, save_json, write_atomic)
from .study.stubs import blank_of, pristine_stub

MAIN = "10"
FOLLOW_UPS = {"11": "GQA", "12": "RoPE", "13": "the KV cache", "14": "tiled attention"}
FLUENT = (12 * 60, 18 * 60)
KEEP_DRILLING = 25 * 60


def interview_cap():
    return max(1.0, float(os.environ.get("STUDY_INTERVIEW_SECONDS", str(20 * 60))))


def quiz_count():
    return max(0, int(os.environ.get("INTERVIEW_QUIZ_COUNT", "5")))


def band(seconds):
    if seconds is None:
        return "not finished within the cap: keep drilling (a fluent candidate takes 12-18 minutes)"
    if seconds < FLUENT[0]:
        return "under 12 minutes: faster than the fluent band"
    if seconds <= FLUENT[1]:
        return "within the fluent band (12-18 minutes)"
    if seconds <= KEEP_DRILLING:
        return "past the fluent band (over 18 minutes): keep drilling to get under 18"
    return "past 25 minutes: keep drilling"


def named_mistakes(entry):
    """The known mistakes a grade named: the catalogue keys in the JSON's `mistake` field, in words."""
    found = []
    for t in (entry or {}).get("tests", []):
        key = t.get("mistake")
        if t.get("passed") or not key:
            continue
        words = key.replace("_", " ")
        if words not in found:
            found.append(words)
    return found


def narration_of(entry):
    """The grader's narration for this exercise, once the grading run reports one (else None)."""
    n = (entry or {}).get("narration")
    return n if isinstance(n, dict) else None


# -- one coding part ---------------------------------------------------------------------------
def coding_part(ex, part, deadline, screen, result):
    """Grades every save of ex until full marks or the deadline; fills `result` as it goes."""
    poll = poll_seconds()
    path = ex.stub
    seen = signature(path)
    started = result["started"]
    title = "Part one" if part == 1 else "Part two (follow-up)"

    def header():
        screen.clear()
        screen.line(f"INTERVIEW {title}: {ex.label}. A blank stub is in exercises/{ex.filename}. "
                    f"Time left {clock(max(0, deadline - time.time()))}.")
        screen.line("Every save is graded. Ctrl-C (or make drill-done) ends the interview and puts your files back.")
        screen.line()

    header()
    screen.line("Write it from memory; annotate each tensor line with its shape, e.g. # (B, H, L, d_head). Go.")
    shown = None
    while True:
        now = time.time()
        if now >= deadline:
            result["outcome"] = Outcome.TIMES_UP
            return result
        tick = int(now - started)
        if tick != shown:
            shown = tick
            last = f"   last save {result['score']:g}/{result['max_score']:g}" if result["score"] is not None else ""
            screen.status(f"interview part {part}: {ex.id}  {clock(now - started)}   "
                          f"left {clock(deadline - now)}{last}")
        time.sleep(min(poll, max(0.0, deadline - now)))
        sig = signature(path)
        if sig == seen:
            continue
        time.sleep(min(poll, 0.2))
        seen = sig = signature(path)
        saved_at = os.path.getmtime(path) if sig else time.time()
        header()
        entry = grade(ex, screen)
        result["grades"] += 1
        if entry:
            result["score"], result["max_score"] = entry["score"], entry["max_score"]
            for title_ in named_mistakes(entry):
                result["mistakes"][title_] = result["mistakes"].get(title_, 0) + 1
            result["narration"] = narration_of(entry) or result["narration"]
        if full_marks(entry):
            result["outcome"] = Outcome.FULL_MARKS
            result["seconds"] = max(0.0, min(saved_at, time.time()) - started)
            return result
        screen.line()
        screen.line(f"Not yet, at {clock(saved_at - started)}. Keep going: save to grade again.")
        shown = None


# -- the interview -----------------------------------------------------------------------------
def note_cut_short():
    """An interview killed outright leaves its state behind: record it as interrupted, once."""
    state = load_json(INTERVIEW_STATE, None)
    if not state:
        return None
    lock = Lock.take()
    if lock is None:
        return None                                   # a live interview (or drill) holds the lock
    try:
        hist = load_json(INTERVIEW_HISTORY, [])
        hist.append({"started": state.get("started"), "cap": state.get("cap"), "outcome": Outcome.INTERRUPTED,
                     "parts": [], "follow_up": state.get("follow_up"), "quiz": None})
        save_json(INTERVIEW_HISTORY, hist)
        INTERVIEW_STATE.unlink(missing_ok=True)
    finally:
        lock.release()
    return state


def interview(follow_up=None, seed=None):
    known = {e.id: e for e in with_stubs() if e.graded}
    if MAIN not in known:
        raise Problem(f"exercise {MAIN} (multi-head attention) has no hidden tests here: nothing to interview on")
    seed = random.SystemRandom().randrange(2 ** 31) if seed is None else seed
    choices = [i for i in FOLLOW_UPS if i in known]
    if follow_up is not None:
        follow_up = follow_up.zfill(2)
        if follow_up not in choices:
            raise Usage(f"the follow-up is one of {', '.join(choices) or 'none here'}, not {follow_up}")
    else:
        follow_up = random.Random(seed + 1).choice(choices) if choices else None
    exs = [known[MAIN]] + ([known[follow_up]] if follow_up else [])
    stubs = {ex.id: blank_of(pristine_stub(ex)) for ex in exs}      # before touching anything
    lock = Lock.take()
    if lock is None:
        raise already_running()
    cap = interview_cap()
    screen = Screen()
    started = time.time()
    deadline = started + cap
    save_json(INTERVIEW_STATE, {"started": started, "cap": cap, "pid": os.getpid(), "follow_up": follow_up})
    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    parts, outcome = [], Outcome.FINISHED
    try:
        for part, ex in enumerate(exs, 1):
            if part == 2 and (parts[0]["outcome"] != Outcome.FULL_MARKS or time.time() >= deadline - 1):
                break
            now = time.time()
            result = {"part": part, "id": ex.id, "name": ex.name, "started": now, "outcome": Outcome.STOPPED,
                      "seconds": None, "score": None, "max_score": None, "grades": 0, "mistakes": {},
                      "narration": None}
            parts.append(result)
            try:
                for s in STOP_SIGNALS:
                    signal.signal(s, stop)
                begin_drill(ex, stubs[ex.id], now, deadline - now)
                coding_part(ex, part, deadline, screen, result)
            except Stop as why:
                result["outcome"] = outcome_of(why)
                outcome = result["outcome"]
            finally:
                end_drill_whatever_happens()
                record_drill(ex, result["started"], result["outcome"], result["seconds"], result["score"],
                             result["max_score"], stub="blank", source="interview")
            if outcome != Outcome.FINISHED:
                break
    finally:
        end_drill_whatever_happens()
        lock.release()
        for s, handler in previous.items():
            signal.signal(s, handler)
    coding_seconds = time.time() - started
    screen.line()
    screen.line(f"Your own exercises/{', '.join(ex.filename for ex in exs[:len(parts)])} "
                f"{'is' if len(parts) == 1 else 'are'} back. Attempts are kept in {rel(ATTEMPTS)}/.")
    answers, quiz_seed = [], seed
    if outcome == Outcome.FINISHED and quiz_count():
        screen.line()
        screen.line(f"Talking points: {quiz_count()} questions, as an interviewer would ask them. (q skips the rest.)")
        questions = quiz.draw(random.Random(quiz_seed), quiz_count(), seen=quiz.seen_keys())
        answers = quiz.ask_all(questions, read=input, write=screen.line)
        if answers:
            quiz.record(answers, source="interview")
    card = {"started": started, "cap": cap, "seed": seed, "outcome": outcome, "seconds": coding_seconds,
            "parts": parts,
            "follow_up": follow_up,
            "quiz": {"asked": len(answers), "right": sum(1 for _, ok in answers if ok),
                     "topics": sorted({q.topic for q, _ in answers})} if answers else None}
    text = scorecard(card)
    hist = load_json(INTERVIEW_HISTORY, [])
    hist.append(card)
    save_json(INTERVIEW_HISTORY, hist)
    write_atomic(SCORECARD, text.encode())
    INTERVIEW_STATE.unlink(missing_ok=True)
    screen.line()
    for line in text.splitlines():
        screen.line(line)
    screen.line(f"(Kept in {rel(SCORECARD)}; every interview is in {rel(INTERVIEW_HISTORY)}.)")
    return 0


def scorecard(card):
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(card["started"]))
    lines = [f"SCORECARD  mock interview of {when}, cap {clock(card['cap'])}"
             + ("" if card["outcome"] == Outcome.FINISHED else f"  ({card['outcome']})"), ""]
    parts = card["parts"]
    if parts:
        p = parts[0]
        got = f"full marks in {clock(p['seconds'])}" if p["seconds"] is not None else \
            f"{p['score'] or 0:g}/{p['max_score'] or 10:g} at the last save ({p['outcome']})"
        lines.append(f"Part one   {p['id']} {p['name']} from a blank file: {got}")
        lines.append(f"           {band(p['seconds'])}")
    follow = card.get("follow_up")
    if len(parts) > 1:
        p = parts[1]
        got = f"full marks in {clock(p['seconds'])}" if p["seconds"] is not None else \
            f"{p['score'] or 0:g}/{p['max_score'] or 10:g} at the last save ({p['outcome']})"
        lines.append(f"Part two   {p['id']} {p['name']} ({FOLLOW_UPS.get(p['id'], 'follow-up')}): {got}")
    elif follow:
        lines.append(f"Part two   {follow} ({FOLLOW_UPS.get(follow, 'follow-up')}): not reached "
                     f"(part one first, with time left)")
    narr = [p["narration"] for p in parts if p.get("narration")]
    if narr:
        for p in parts:
            n = p.get("narration")
            if n:
                cov = f"{n.get('annotated', 0)} of {n.get('tensor_lines', 0)} tensor lines annotated"
                acc = f"{n.get('right', 0)} right"
                lines.append(f"Narration  {p['id']}: {cov}, {acc}")
    else:
        lines.append("Narration  not measured (no part reached a run that could trace it)")
    q = card.get("quiz")
    lines.append(f"Quiz       {q['right']}/{q['asked']} talking points right" if q else "Quiz       not taken")
    mistakes = {}
    for p in parts:
        for title, n in p.get("mistakes", {}).items():
            mistakes[f"{p['id']}: {title}"] = n
    if mistakes:
        lines.append("Mistakes the grader named along the way:")
        for title, n in mistakes.items():
            lines.append(f"  - {title}" + (f" (in {n} grades)" if n > 1 else ""))
    else:
        lines.append("Mistakes the grader named along the way: none")
    return "\n".join(lines) + "\n"


# -- progress: blank-file completions --------------------------------------------------------
def blank_summary(slot):
    """(completions, best, median, trend) of an exercise's blank-file drills, from its history slot."""
    times = [d["seconds"] for d in slot.get("drills", []) if d.get("stub") == "blank" and d.get("seconds") is not None]
    if not times:
        return 0, None, None, ""
    trend = ""
    if len(times) >= 2:
        trend = "faster" if times[-1] < times[-2] else ("slower" if times[-1] > times[-2] else "same")
    return len(times), min(times), statistics.median(times), trend


def progress_columns(slot):
    """make progress's blank-file columns for one exercise: completions toward five, median time."""
    n, best, median, trend = blank_summary(slot or {})
    return f"{f'{min(n, 99)}/5':<5} {(clock(median) if median is not None else '—'):>6}"


def progress_footer():
    """make progress's lines on interviews and the quiz (none when neither was ever taken)."""
    lines = []
    hist = load_json(INTERVIEW_HISTORY, [])
    if hist:
        done = [c for c in hist if c.get("parts") and c["parts"][0].get("seconds") is not None]
        times = [c["parts"][0]["seconds"] for c in done]
        last = hist[-1]
        what = scorecard(last).splitlines()[2].split(":", 1)[-1].strip() if last.get("parts") else last["outcome"]
        lines += ["", f"Interviews: {len(hist)}, part one at full marks in {len(done)}"
                      + (f" (best {clock(min(times))}, median {clock(statistics.median(times))})" if times else "")
                      + f"; last: {what}. make interview"]
    state = quiz.load_state()
    if state.get("topics"):
        parts = [f"{t} {s['right']}/{s['asked']}" for t, s in state["topics"].items() if s.get("asked")]
        lines += ["" if not lines else None, "Quiz per topic: " + ", ".join(parts) + ". make quiz TOPIC=..."]
    return [x for x in lines if x is not None]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.interview", description=__doc__.split("\n\n")[0])
    parser.add_argument("--follow-up", dest="follow_up", help="11, 12, 13 or 14 (default: drawn at random)")
    parser.add_argument("--seed", type=int)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    try:
        recover()
        fold_last()
        state = note_cut_short()
        if state:
            print(f"The interview started at {time.strftime('%H:%M', time.localtime(state['started']))} was cut "
                  f"short: recorded as interrupted.", flush=True)
        return interview(args.follow_up or os.environ.get("INTERVIEW_FOLLOW_UP") or None,
                         args.seed if args.seed is not None else
                         (int(os.environ["INTERVIEW_SEED"]) if os.environ.get("INTERVIEW_SEED") else None))
    except Usage as e:
        print(f"interview: {e}", file=sys.stderr)
        return 2
    except Problem as e:
        print(f"interview: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
