"""python -m grader.study COMMAND (the Makefile's hint, watch, drill, drill-done, progress, reset, solution)."""
import sys

from .cli import main

sys.exit(main())
