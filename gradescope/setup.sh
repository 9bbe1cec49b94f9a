#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image. The zip's contents are
# in /autograder/source.
# Supported base images: Ubuntu 22.04 (Python 3.10) and Ubuntu 24.04 (Python 3.12), the ones
# Gradescope offers with apt-get. The grader needs Python 3.10 or newer (and CPU-only PyTorch
# 2.13.0 has wheels for 3.10 to 3.13): on an older image (Ubuntu 20.04 has 3.8) this stops at once.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
if ! command -v apt-get >/dev/null; then
  echo "setup.sh: this base image has no apt-get; choose Gradescope's Ubuntu 22.04 or 24.04 base image." >&2
  exit 1
fi
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip
if ! python3 -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))'; then
  echo "setup.sh: this base image's Python is $(python3 -V 2>&1 | cut -d' ' -f2); the grader needs 3.10 to 3.13." >&2
  echo "setup.sh: choose Gradescope's Ubuntu 22.04 or 24.04 base image in the autograder settings." >&2
  exit 1
fi
python3 -m venv "$ROOT/venv"
# CPU-only PyTorch first: the plain index would pull a multi-gigabyte CUDA build.
"$ROOT/venv/bin/python" -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
"$ROOT/venv/bin/python" -m pip install -r "$ROOT/source/requirements.txt"
# The grader runs as root and each submission's sandbox as a uid of its own: the autograder's
# files (hidden tests, grader) readable by root alone stay out of a sandbox's reach even where
# Docker's seccomp profile keeps bubblewrap from making namespaces (the grader checks it).
chmod -R go-rwx "$ROOT/source"

# Self-test, at image build: the sandbox must hold the course minimum of isolation in this very
# image (grader/sandbox/host.py course_minimum), or every submission would score 0 with the reason
# in a log students never see. Grade one file of a single statement, as run_autograder grades, and
# fail the build, saying why, if the grader refuses; GRADER_ALLOW_WEAK_ISOLATION is ignored here.
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
first="$(cd "$ROOT/source/grader/tests" && ls test_[0-9][0-9]_*.py | head -n 1 | sed 's/^test_//')"
echo "pass" > "$probe/$first"
set +e
(cd "$ROOT/source" && env -u GRADER_ALLOW_WEAK_ISOLATION "$ROOT/venv/bin/python" -m grader "${first:0:2}" \
  --path "$probe" --seed 1 --require-isolation > "$probe/out.txt" 2>&1)
code=$?
set -e
if [ "$code" -ne 0 ] && [ "$code" -ne 1 ]; then
  {
    echo "setup.sh: SELF-TEST FAILED (exit $code): this image cannot grade with the course's minimum of isolation."
    echo "setup.sh: every submission would score 0. What the grader said:"
    sed 's/^/    /' "$probe/out.txt"
    echo "setup.sh: use Gradescope's Ubuntu 22.04 or 24.04 base image as root; README, 'What the grader guarantees'."
  } >&2
  exit 1
fi
echo "setup.sh: self-test passed: $(grep -m1 '^isolation:' "$probe/out.txt" || echo 'the sandbox holds the course minimum')"
