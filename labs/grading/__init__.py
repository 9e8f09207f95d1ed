"""Batch grading for instructors (``lab grade``): submissions, clusters, workers, reports.

One folder per learner is validated, then graded in a cluster of its own state (the
lab's namespaces reset, or a fresh cluster), and the results go to a CSV, a JSON file and a
self-contained HTML report.
"""

from labs.grading.batch import Batch, BatchUnavailable, LearnerResult, grade
from labs.grading.reports import Written, default_out_dir, write
from labs.grading.submissions import Found, Submission, SubmissionWorkspace, find, validate

__all__ = [
    "Batch",
    "BatchUnavailable",
    "Found",
    "LearnerResult",
    "Submission",
    "SubmissionWorkspace",
    "Written",
    "default_out_dir",
    "find",
    "grade",
    "validate",
    "write",
]
