"""A quiz on the talking points of an attention interview (make quiz [TOPIC=...]).

    python -m grader.quiz [TOPIC] [--count N] [--seed S] [--list]

Multiple-choice questions shuffle their choices; numeric ones draw fresh parameters each time and
are checked by computation (a numeric reply may be a number or arithmetic: 2*32*4096*128*2).
Every answer shows a short explanation and the reading that covers it. Results are kept per
topic in .grade/quiz.json; `make progress` and `make quiz` show them. A question is not asked
again until every question of its topic has been: quiz.json keeps the keys asked since then.

This module imports no torch: every answer is computed with the standard library.
"""
import argparse
import ast
import math
import operator
import os
import random
import sys
import time

from ..study import state
from .questions import ALIASES, GENERATORS, TOPICS



# ============================================================================================
# Running a quiz
# ============================================================================================
def generators(topic=None):
    return [g for g in GENERATORS if topic is None or g[1] == topic]


def resolve_topic(name):
    if not name:
        return None
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in TOPICS:
        raise ValueError(f"unknown topic {name!r}: choose from {', '.join(TOPICS)}")
    return key


def _spread(pool):
    """The generators in round-robin order over their topics."""
    by_topic = {}
    for g in pool:
        by_topic.setdefault(g[1], []).append(g)
    order = []
    while any(by_topic.values()):
        for t in by_topic:
            if by_topic[t]:
                order.append(by_topic[t].pop())
    return order


def draw(rng, count, topic=None, seen=()):
    """`count` distinct questions (all of the topic's, at most), spread over topics, in a random order.
    Those whose keys are not in `seen` (asked since their topic was last used up) come first."""
    pool = generators(topic)
    rng.shuffle(pool)
    fresh = [g for g in pool if g[0] not in seen]
    picked = (_spread(fresh) + _spread([g for g in pool if g[0] in seen]))[:count]
    rng.shuffle(picked)
    return [gen(rng) for _, _, _, gen in picked]


def seen_keys(data=None):
    """The keys asked since their topic's questions were last all asked (.grade/quiz.json)."""
    data = load_state() if data is None else data
    seen = data.get("seen", [])
    return set(seen) if isinstance(seen, list) else set()


def _still_seen(seen, asked):
    """`seen` after a session that asked `asked`: a topic whose every question has now been asked
    starts over, holding only the questions this session repeated (the first of its new round)."""
    after = seen | asked
    for t in TOPICS:
        keys = {g[0] for g in generators(t)}
        if keys <= after:
            after = (after - keys) | (keys & asked & seen)
    return after


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.FloorDiv: operator.floordiv, ast.USub: operator.neg, ast.UAdd: operator.pos}
_NAMES = {"pi": math.pi, "e": math.e}
_FUNCS = {"sqrt": math.sqrt, "exp": math.exp, "log": math.log, "ln": math.log}


def parse_number(text):
    """A number or plain arithmetic (2*32*128, 2**30, 1/sqrt(64), 1.5e9, 1,024); None if it is not one."""
    text = text.strip().replace(",", "").replace("_", "").replace("^", "**").replace("×", "*")
    for unit in ("gib", "mib", "gflops", "gflop", "tokens", "rad", "x"):
        if text.lower().endswith(unit):
            text = text[: -len(unit)].strip()
    if not text:
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 100:
                raise ValueError("too large")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        if isinstance(node, ast.Name) and node.id in _NAMES:
            return _NAMES[node.id]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS \
                and len(node.args) == 1 and not node.keywords:
            return _FUNCS[node.func.id](ev(node.args[0]))
        raise ValueError("not arithmetic")
    try:
        value = float(ev(tree))
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return value if math.isfinite(value) else None


def check(q, reply):
    """True or False for a valid reply, None when the reply is not an answer (ask again)."""
    reply = reply.strip()
    if q.kind == "choice":
        letters = "abcdefgh"[:len(q.choices)]
        r = reply.lower().rstrip(")").strip()
        if len(r) == 1 and r in letters:
            return letters.index(r) == q.answer
        if r.isdigit() and 1 <= int(r) <= len(q.choices):
            return int(r) - 1 == q.answer
        return None
    value = parse_number(reply)
    if value is None:
        return None
    return math.isclose(value, float(q.answer), rel_tol=q.rel_tol, abs_tol=q.abs_tol)


def render(q, n=None, total=None):
    head = f"[{n}/{total}] " if n else ""
    lines = [f"{head}({q.topic}) {q.prompt}"]
    if q.kind == "choice":
        lines += [f"   {'abcdefgh'[i]}) {c}" for i, c in enumerate(q.choices)]
        lines.append("Your answer (a-d, q to stop): ")
    else:
        lines.append(f"Your answer{' in ' + q.unit if q.unit else ''} (a number or arithmetic, q to stop): ")
    return "\n".join(lines)


def verdict(q, ok):
    mark = "✓ Right." if ok else f"✗ Not quite: the answer is {q.right_text}."
    return f"{mark}\n   {q.explanation}\n   Read: {q.reading}"


# -- the results, per topic ------------------------------------------------------------------
def load_state():
    data = state.load_json(state.QUIZ_STATE, {})
    return data if isinstance(data, dict) else {}


def save_state(data):
    state.save_json(state.QUIZ_STATE, data)


def record(answers, source="quiz"):
    """Folds a session's (question, right) pairs into .grade/quiz.json; returns the session's entry."""
    data = load_state()
    topics = data.setdefault("topics", {})
    for q, ok in answers:
        t = topics.setdefault(q.topic, {"asked": 0, "right": 0, "last": None})
        t["asked"] += 1
        t["right"] += int(bool(ok))
        t["last"] = time.time()
    data["seen"] = sorted(_still_seen(seen_keys(data), {q.key for q, _ in answers}))
    session = {"time": time.time(), "source": source, "asked": len(answers),
               "right": sum(1 for _, ok in answers if ok),
               "questions": [{"key": q.key, "topic": q.topic, "right": bool(ok)} for q, ok in answers]}
    data.setdefault("sessions", []).append(session)
    save_state(data)
    return session


def topic_table(data=None):
    data = load_state() if data is None else data
    topics = data.get("topics", {})
    rows = []
    for t, about in TOPICS.items():
        s = topics.get(t)
        score = f"{s['right']}/{s['asked']} ({100 * s['right'] / s['asked']:.0f}%)" if s and s["asked"] else "—"
        rows.append(f"  {t:<11} {score:<14} {about}")
    return rows


def ask_all(questions, read=input, write=print):
    """Asks each question in turn; returns [(question, right)] for those answered (q or EOF stops)."""
    answers = []
    for n, q in enumerate(questions, 1):
        write("")
        prompt = render(q, n, len(questions))
        while True:
            try:
                reply = read(prompt)
            except (EOFError, KeyboardInterrupt):      # the answers so far still count
                write("")
                return answers
            if reply.strip().lower() in ("q", "quit", "exit"):
                return answers
            ok = check(q, reply)
            if ok is not None:
                break
            prompt = ("Answer with a letter (a-d)." if q.kind == "choice" else
                      "Answer with a number (arithmetic such as 2*32*128 works).") + " Your answer: "
        write(verdict(q, ok))
        answers.append((q, ok))
    return answers


def run(topic=None, count=10, seed=None, read=input, write=print, source="quiz"):
    seed = random.SystemRandom().randrange(2 ** 31) if seed is None else seed
    rng = random.Random(seed)
    questions = draw(rng, count, topic, seen_keys())
    what = f"on {topic} ({TOPICS[topic]})" if topic else "on every topic"
    write(f"Quiz {what}: {len(questions)} questions (seed {seed}). Type q to stop early.")
    answers = ask_all(questions, read, write)
    right = sum(1 for _, ok in answers if ok)
    write("")
    if answers:
        session = record(answers, source)
        write(f"Score: {right}/{len(answers)}" + (f" (stopped after {len(answers)} of {len(questions)})"
                                                  if len(answers) < len(questions) else "") + ".")
        missed = sorted({q.reading for q, ok in answers if not ok})
        if missed:
            write("To reread: " + "; ".join(missed))
    else:
        session = None
        write("No question answered: nothing recorded.")
    write("")
    write("Your results per topic (all sessions):")
    for row in topic_table():
        write(row)
    return session


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.quiz", description=__doc__.split("\n\n")[0])
    parser.add_argument("topic", nargs="?", default="")
    parser.add_argument("--count", type=int, default=int(os.environ.get("QUIZ_COUNT", "10")))
    parser.add_argument("--seed", type=int)
    parser.add_argument("--list", action="store_true", help="list the topics and your results")
    args = parser.parse_args(argv)
    try:
        topic = resolve_topic(args.topic)
    except ValueError as e:
        print(f"quiz: {e}", file=sys.stderr)
        return 2
    if args.list:
        counts = {t: len(generators(t)) for t in TOPICS}
        print(f"{len(GENERATORS)} questions on {len(TOPICS)} topics (make quiz TOPIC=name):")
        for t, about in TOPICS.items():
            print(f"  {t:<11} {counts[t]:>2} questions  {about}")
        print()
        print("Your results per topic:")
        print("\n".join(topic_table()))
        return 0
    if args.count < 1:
        print("quiz: --count must be at least 1", file=sys.stderr)
        return 2
    run(topic, args.count, args.seed)
    return 0

