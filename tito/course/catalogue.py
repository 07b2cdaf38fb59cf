"""A module's catalogue of known mistakes, and the fingerprints of it that students receive.

The catalogue (`mistakes.yaml` beside the module's source, settings.ini `mistakes`) holds, per
solution region, a probe: code that calls the region's function on inputs the visible tests show
and returns one answer per call. Each mistake is the reference notebook with one region's body
replaced by a wrong version. Two functions "behave alike" when the fingerprints of their answers
are equal; the fingerprint is the one `fingerprint(answers)` of the module's test-support cell,
so the student's notebook, `tito module complete` and the grader compute it alike.

What students receive (`mistakes.json` beside the student version) is, per region, the probe and
each wrong version's fingerprint: no wrong version's code, no reference answer.
"""

from __future__ import annotations

import ast
import json
import warnings
from dataclasses import dataclass

import numpy as np
import yaml

from .notebooks import (
    is_export_cell,
    is_test_support_cell,
    replace_region,
    student_functions,
)


@dataclass
class Catalogue:
    probes: dict[str, str]  # region (solution cell grade id) -> code that defines probe(function)
    mistakes: list[dict]  # id, mistake, region, index (optional), caught_by, code


def load(text: str) -> Catalogue:
    # libyaml's safe loader where PyYAML has it: a job reads the catalogue for each failed
    # submission, in 2 ms instead of 29.
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return Catalogue(dict(data.get("probes", {})), list(data.get("mistakes", [])))


def region_functions(reference) -> dict[str, str]:
    """Solution cell grade id -> the name of the function its (first) region sits in."""
    out = {}
    for cell in reference.cells:
        md = cell.metadata.get("nbgrader", {})
        if is_export_cell(cell) and md.get("solution"):
            names = student_functions([cell])
            if names:
                out[md["grade_id"]] = names[0]
    return out


def exported(nb) -> dict:
    """A namespace of `nb`'s exported cells (the package as that notebook writes it)."""
    namespace: dict = {"__name__": "__catalogue__"}
    for cell in nb.cells:
        if is_export_cell(cell):
            exec(compile(cell.source, "<reference>", "exec"), namespace)
    return namespace


def wrong_version(reference, mistake: dict) -> dict:
    """The namespace of the reference notebook with `mistake`'s region replaced."""
    return exported(
        replace_region(reference, mistake["region"], mistake["code"], mistake.get("index", 0))
    )


def fingerprint_function(reference):
    """The test-support cells' `fingerprint(answers)`, on its own (its imports, not the cell)."""
    for cell in reference.cells:
        if not is_test_support_cell(cell):
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.FunctionDef) and node.name == "fingerprint":
                namespace: dict = {}
                source = "import hashlib\nimport json\n\nimport numpy as np\n\n"
                exec(compile(source + ast.unparse(node), "<fingerprint>", "exec"), namespace)
                return namespace["fingerprint"]
    raise ValueError("the module's test-support cells define no fingerprint(answers)")


def answer_with(passthrough: tuple = ()):
    """The probes' answer(call): what the call gave, or "raised <type>"; exceptions of the types
    in `passthrough` (the grader's own) are raised, never answered."""

    def answer(call):
        try:
            return call()
        except passthrough:
            raise
        except Exception as e:
            return f"raised {type(e).__name__}"

    return answer


def answers(probe: str, function, namespace: dict, passthrough: tuple = ()) -> list:
    """The answers `probe` gets from `function`; an exception out of the probe itself is one
    answer, its type (exceptions of the types in `passthrough` are raised)."""
    ns = {**namespace, "answer": answer_with(passthrough)}
    exec(compile(probe, "<probe>", "exec"), ns)
    got = answer_with(passthrough)(lambda: list(ns["probe"](function)))
    return got if isinstance(got, list) else [got]


def release_fingerprints(reference, catalogue: Catalogue) -> dict:
    """What students receive: per function, its probe and each wrong version's fingerprint."""
    fingerprint = fingerprint_function(reference)
    names = region_functions(reference)
    functions = {}
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # wrong versions divide by 0
        warnings.simplefilter("ignore")
        for region, probe in catalogue.probes.items():
            name = names[region]
            known = []
            for mistake in (m for m in catalogue.mistakes if m["region"] == region):
                wrong = wrong_version(reference, mistake)
                known.append(
                    {
                        "id": mistake["id"],
                        "mistake": mistake["mistake"],
                        "fingerprint": fingerprint(answers(probe, wrong[name], wrong)),
                    }
                )
            functions[name] = {"region": region, "probe": probe, "mistakes": known}
    return {"functions": functions}


def release_text(reference, catalogue: Catalogue) -> str:
    return json.dumps(release_fingerprints(reference, catalogue), indent=1, sort_keys=True) + "\n"
