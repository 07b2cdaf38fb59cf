"""Autograding: every process that runs a submission's code is jailed; trusted code decides.

Follow one submission from `host.autograde` to its score:
- host.py: the queue; nbgrader prepares the submission (no code runs); scores are decided
  and recorded (grading.json, the gradebook) from the job's data.
- job.py: one submission's job, data in and data out, in a process of its own here or on a
  Dask worker (cluster.py): the jailed kernel run, then the judge.
- judge.py: the instructor's tests in the job's trusted process, against the student's
  functions in a jailed process; jailed/protocol.py is what crosses between them.
- jail.py: how a process is confined (bubblewrap); jailed/ holds the code that runs inside.
Around them: outcome.py is what a graded submission leaves (grading.json), which the views
(report.py, lms.py, feedback.py, analytics.py, similarity.py) read with the gradebook's
scores (scores.py), never importing the grader; display.py makes the only copy of a
submission that pages show (formgrader, feedback.py); files.py reads what a student or an
archive provided (host.py, collect.py); formgrader.py starts nbgrader's formgrader for
hostile work. docs/architecture.md draws it.
"""
