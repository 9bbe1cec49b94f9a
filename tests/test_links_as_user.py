"""The link layouts of tests/test_links.py, graded by an ordinary user (a `useradd` user, through
`setpriv`), as a student or a GitHub runner would: the same tests of the same runs, in a module of
their own so that these runs and the root ones may run at once."""
from test_links import (graded, test_batch_a_link_in_the_path_or_inside_scores_zero_with_its_reason,  # noqa: F401
                        test_batch_grades_the_honest_beside_them_and_audits_in_the_worker,
                        test_batch_refuses_a_class_folder_given_through_a_link,
                        test_classroom_exercises_linked_to_the_course_solutions_scores_zero_and_the_audit_says_so,
                        test_gradescope_collect_keeps_a_linked_file_ungraded_and_refuses_a_linked_folder,
                        test_path_through_a_linked_folder_above_scores_zero)

MODE = "user"
