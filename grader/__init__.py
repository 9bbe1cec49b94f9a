"""The hidden-test grader for the attention exercises: `python -m grader --help`."""
