"""The seed a grade draws its inputs from.

Practice grades draw a fresh seed each run. Course grades (--classroom, --gradescope, batch) use
the course's one seed, COURSE_SEED in grader/course.cfg, so that one submission gets one grade on
every platform and a resubmission cannot re-roll the inputs. Nothing a student controls (a commit
hash, a file in the submission) goes into it. COURSE_SEED_SALT, when set (an organisation secret
in Classroom; in the environment for batch; baked into the Gradescope zip), is mixed in so that
the seed cannot be read from the course config alone. Standard library only.
"""
import hashlib
import os
import random
import re

from .exercises import GRADER_DIR

CONFIG = GRADER_DIR / "course.cfg"
SEEDS = 10**6                  # seeds run 1 .. SEEDS - 1, as the fresh ones do


class BadConfig(Exception):
    pass


def settings(path=CONFIG):
    """{KEY: value} of the course config (empty when there is none, as in a student template)."""
    if not path.is_file():
        return {}
    found = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Z_]+)\s*=\s*(.*)", line)
        if not m:
            raise BadConfig(f"{path}:{n}: expected KEY=VALUE, found {line!r}")
        found[m.group(1)] = m.group(2).strip()
    return found


def course_seed(path=CONFIG, environ=os.environ):
    """The course's seed (salted when COURSE_SEED_SALT is set), or None where no course config is."""
    cfg = settings(path)
    if "COURSE_SEED" not in cfg:
        return None
    if not re.fullmatch(r"\d+", cfg["COURSE_SEED"]) or not 0 < int(cfg["COURSE_SEED"]) < SEEDS:
        raise BadConfig(f"{path}: COURSE_SEED must be a whole number from 1 to {SEEDS - 1}, "
                        f"found {cfg['COURSE_SEED']!r}")
    seed = int(cfg["COURSE_SEED"])
    salt = environ.get("COURSE_SEED_SALT") or cfg.get("COURSE_SEED_SALT", "")
    if not salt:
        return seed
    digest = hashlib.sha256(f"{seed}\0{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (SEEDS - 1) + 1


def default_seed(course_mode):
    """The seed when no --seed is given: the course's in a course mode (where it has one), else fresh."""
    seed = course_seed() if course_mode else None
    return seed if seed is not None else random.SystemRandom().randrange(1, SEEDS)
