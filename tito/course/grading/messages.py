"""What the judge may say of a failed graded cell: nothing of a hidden test.

A test cell is cut at nbgrader's hidden-test markers into parts that run one after the other
in the same namespace, and the judge runs every visible part before any hidden one (judge.py).
A failure in a visible part keeps the exception's own message: the student sees those inputs
in their notebook. Once a hidden part has run, the student's code may have kept what it saw
(hidden inputs, their expected values) and may hand it back as an exception's text or as the
values a message prints, and a hidden check's own message can name its inputs: from then on a
message is the judge's own words only: the student's function that raised it (and, out of a
hidden part, the kind of failure).
"""

from __future__ import annotations

from .display import HIDDEN_BEGIN, HIDDEN_END

MAX_MESSAGE = 500


def parts(source: str, name: str) -> list[tuple[object, bool]]:
    """(compiled code, whether it is a hidden test) for each part of a test cell, in order.

    Line numbers stay the cell's own. A cell whose markers cannot be cut at (a hidden part
    inside a block) is one hidden part as a whole."""
    lines = source.split("\n")
    cuts, hidden, start = [], False, 0
    for i, line in enumerate(lines):
        if (HIDDEN_END if hidden else HIDDEN_BEGIN) in line:
            cuts.append((start, i, hidden))
            start, hidden = i + 1, not hidden
    cuts.append((start, len(lines), hidden))
    try:
        return [
            (compile("\n" * a + "\n".join(lines[a:b]), name, "exec"), h)
            for a, b, h in cuts
            if "\n".join(lines[a:b]).strip()
        ]
    except SyntaxError:
        return [(compile(source, name, "exec"), True)]


def holds_hidden_tests(source: str) -> bool:
    return HIDDEN_BEGIN in source


def shown(error: Exception, in_hidden: bool, after_hidden: bool) -> str:
    """The message of a failed cell: the exception's own before any hidden part ran, else the
    student's function that raised it (`student_function`, set by the judge's proxy) and, out
    of a hidden part only, the kind of failure: which of a dozen exception types a hidden part
    raised could itself carry what the student's code saw."""
    kind = type(error).__name__
    if not (in_hidden or after_hidden):
        text = str(error).strip()
        return f"{kind}: {text.splitlines()[0] if text else kind}"[:MAX_MESSAGE]
    function = getattr(error, "student_function", "")
    if in_hidden:
        where = f" in {function}()" if function else ""
        return f"a hidden check failed{where} (hidden inputs and values are not shown)"
    raised = f"{kind} raised by {function}()" if function else kind
    return f"{raised} (after a hidden check: no text or values of the student's code are shown)"
