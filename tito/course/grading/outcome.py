"""The outcome of grading one submission: what the views (report, feedback, analytics, verify,
the LMS file) read of it, apart from grading itself.

`autograded/<student>/<module>/grading.json` holds an Outcome as JSON: status (graded, invalid
or failed), the reason, the isolation it ran in, the judge's verdicts and messages per cell, the
digests of what graded it and the diagnosis. The scores are not in it: the gradebook holds them
(scores.py), since a person may replace one in formgrader.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..settings import Course, Module
from .files import read_regular

OUTCOME_FILE = "grading.json"


@dataclass
class CellScore:
    grade_id: str
    max_score: float
    score: (
        float | None
    )  # decided here and recorded in the gradebook; None when read back from grading.json
    kernel: float | None  # points from the kernel run's outputs (None: not run)
    judge: bool | None  # the judge's verdict (None: not judged)
    message: str = ""


@dataclass
class Outcome:
    student: str
    module: str
    status: str  # graded | invalid | failed
    reason: str = ""
    cells: list[CellScore] = field(default_factory=list)
    isolation: str = ""  # the jail the submission's code ran in
    memory_mb: dict[str, float] = field(
        default_factory=dict
    )  # stage -> the most its processes held at once
    # What graded it (grading_digests) and the submission as received ("submission"): sha256 hex
    # digests.
    digests: dict[str, str] = field(default_factory=dict)
    # Solution region (grade id) -> ids of the catalogued mistakes its function behaves like; [] for
    # "differs from the reference, like no known mistake" (diagnosis.py).
    diagnosis: dict[str, list[str]] = field(default_factory=dict)
    # Grade id -> {"score": a score entered by hand, "against": the `seen` digest of the outcome
    # it was entered against}: record() fills it from the gradebook.
    manual: dict[str, dict] = field(default_factory=dict)

    @property
    def seen(self) -> str:
        """What a person grading by hand saw of this outcome (the submission, the status and the
        automatic verdicts), as a short digest: a later outcome with another has changed."""
        seen = {
            "submission": self.digests.get("submission", ""),
            "status": self.status,
            "cells": [(c.grade_id, c.kernel, c.judge, c.message) for c in self.cells],
        }
        return digest(json.dumps(seen, sort_keys=True).encode())[:12]

    def scored_against_another(self) -> list[str]:
        """The cells scored by hand against another outcome than this one."""
        return sorted(g for g, x in self.manual.items() if x["against"] != self.seen)

    @property
    def score(self) -> float | None:
        """The points decided in this run; None for a failed outcome, which has no score (an
        outcome read back from grading.json has none either: read the gradebook, scores.py)."""
        if self.status == "failed":
            return None
        if any(c.score is None for c in self.cells):
            raise ValueError("this outcome holds no scores; the gradebook does (scores.py)")
        return sum(c.score for c in self.cells)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.cells)

    def to_json(self) -> str:
        """Everything but the scores, which the gradebook holds (a score entered by hand may replace
        one)."""
        d = asdict(self)
        for c in d["cells"]:
            del c["score"]
        return json.dumps(d, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        d = json.loads(text)
        cells = [CellScore(**{**c, "score": None}) for c in d.pop("cells")]
        d.pop("score", None), d.pop("max_score", None)  # totals written by earlier versions
        return cls(**d, cells=cells)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_outcome(course: Course, course_root: Path, m: Module, student: str) -> Outcome | None:
    """The recorded outcome, or None when there is none (or it cannot be read as one)."""
    path = course.student_folder("autograded", m, student, course_root) / OUTCOME_FILE
    try:
        return Outcome.from_json(read_regular(path, 16 << 20).decode("utf-8"))
    except (OSError, ValueError, TypeError, KeyError):
        return None
