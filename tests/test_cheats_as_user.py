"""The cheats of tests/test_cheats.py, graded by an ordinary user (a `useradd` user, through
`setpriv`), as a student or a GitHub runner would: the same tests of the same batch, in a module
of their own so that this batch and the root one may run at once."""
from test_cheats import (graded, test_a_flood_of_output_is_cut_in_the_report,  # noqa: F401 (collected here)
                         test_cheat_scores_zero_and_costs_nothing_else, test_each_report_is_whole_clean_and_leaks_nothing,
                         test_no_pickle_from_a_sandbox_ever_ran,
                         test_the_batch_ends_in_time_with_nothing_left_and_the_grader_untouched)

MODE = "user"
