"""What a study command raises to end: the command line turns each into one line and an exit status."""


class Usage(Exception):
    """Bad input: exit status 2."""


class Problem(Exception):
    """The command cannot do what was asked: exit status 1."""


class Stop(Exception):
    """A signal asked a drill (or an interview) to stop."""
