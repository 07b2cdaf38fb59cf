"""Autograding: nbgrader in a kernel, checked by an isolated judge.

Student code can reach everything in the kernel that runs it (numpy, builtins, IPython,
the kernel's replies), so a verdict computed in that kernel can be forged. The judge
therefore runs the student's exported code in a separate, resource-limited process and
talks to it only with data (JSON and plain .npy arrays, never pickles); the graded test
cells run in the trusted grading process against proxies of the student's functions.
"""
