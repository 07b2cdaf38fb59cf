"""The known mistake behind a failure: each solution region matched against the module's catalogue.

The catalogue (`mistakes.yaml` beside the module's source, settings.ini `mistakes`) holds, per
solution region, a probe: instructor code that calls the region's function on fixed inputs and
returns what it observed (arrays, numbers, whether an array was updated in place). The judge
runs each probe with the student's function, through its proxy, so the student's code runs in
the jail, and with the reference function. Where the two differ, it runs the probe with every
catalogued wrong version of that region (the reference notebook with the region's body
replaced: instructor code, run here, calling the reference's other functions) and names the
mistakes whose observations the student's match, every number to the catalogue's tolerance.
Two are named only when they give the same numbers (the same mistake written two ways); with
none, the diagnosis is "no known mistake": a wrong name is worse than none. A function still
raising the student version's NotImplementedError is not written yet: nothing is said.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import yaml

from ..notebooks import is_export_cell, replace_region, student_functions

NO_KNOWN_MISTAKE = "no known mistake"
NOT_WRITTEN = "raised NotImplementedError"  # what the student version's stub observes
UNANSWERED = ["raised StudentError"]  # the judge could not get an answer from the student's code


@dataclass
class Catalogue:
    rtol: float
    atol: float
    probes: dict[str, str]  # region (solution cell grade id) -> code that defines probe(function)
    mistakes: list[dict]  # id, mistake, region, index (optional), code, ...


def load(text: str) -> Catalogue:
    data = yaml.safe_load(text)
    tolerance = data.get("tolerance", {})
    return Catalogue(
        float(tolerance.get("rtol", 1e-9)),
        float(tolerance.get("atol", 1e-12)),
        dict(data.get("probes", {})),
        list(data.get("mistakes", [])),
    )


def observe(probe: str, function, namespace: dict, passthrough: tuple = ()) -> list:
    """What `probe` observes of `function`; an exception it raises is observed by its type.
    Exceptions of the types in `passthrough` (the grader's own) are raised, never observed."""
    ns = dict(namespace)
    exec(compile(probe, "<probe>", "exec"), ns)
    try:
        return list(ns["probe"](function))
    except passthrough:
        raise
    except Exception as e:
        return [f"raised {type(e).__name__}"]


def same(a: list, b: list, rtol: float, atol: float) -> bool:
    """Two observations alike: the same length; numbers and arrays close (same shapes, nan equal
    to nan), everything else equal. Values that cannot be compared (whatever a student's code
    left in its state) are not alike: they never raise here."""
    try:
        return len(a) == len(b) and all(_alike(x, y, rtol, atol) for x, y in zip(a, b))
    except Exception:
        return False


def _alike(x, y, rtol: float, atol: float) -> bool:
    numeric = [isinstance(v, (np.ndarray, float, int)) and not isinstance(v, bool) for v in (x, y)]
    if all(numeric):
        return np.shape(x) == np.shape(y) and bool(
            np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True)
        )
    return not any(numeric) and type(x) is type(y) and bool(x == y)


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


def _module(nb, overrides: dict) -> dict:
    """A namespace of `nb`'s exported cells, then `overrides`."""
    namespace: dict = {"__name__": "__diagnosis__"}
    for cell in nb.cells:
        if is_export_cell(cell):
            exec(compile(cell.source, "<reference>", "exec"), namespace)
    namespace.update(overrides)
    return namespace


def diagnose(
    reference,
    catalogue: Catalogue,
    student: dict,
    passthrough: tuple = (),
    before_region=None,
    stop=None,
    failed: set[str] | None = None,
) -> dict[str, dict]:
    """For every region whose student function observes differently from the reference: the
    catalogued mistakes it matches, {"ids": [...], "mistake": "..."}; several only when they
    give the same observations (the same mistake written two ways), none as NO_KNOWN_MISTAKE.

    `student` maps a function name to the student's (the judge's proxies). Only the probe calls
    the student's function, with the catalogue's own inputs; the reference and the wrong versions
    run here and call the reference's other functions (AdamW's calls the reference's Adam), so no
    value only trusted code computed reaches the student's code. With `failed` (the grade ids of
    the cells that failed), a region is named only when a cell that catches one of its
    catalogued mistakes failed (every region is probed: whether a callee differs decides
    whether its caller is named). `before_region(region)` is called before each region's probe
    (the judge sets its time limit there); `stop()` true ends the diagnosis. A region where the
    student's code could not answer (the judge's StudentError: a time limit, a process that
    could not start) is not diagnosed.
    """
    names = region_functions(reference)
    trusted = _module(reference, {})
    out = {}
    for region, name in names.items():
        probe = catalogue.probes.get(region)
        if probe is None or name not in student:
            continue
        if before_region:
            before_region(region)
        if stop and stop():
            break
        theirs = observe(probe, student[name], trusted, passthrough)
        if theirs == [NOT_WRITTEN]:  # the student version's stub: nothing written to diagnose
            continue
        reference_seen = observe(probe, trusted[name], trusted, passthrough)
        if UNANSWERED in (theirs, reference_seen) or (stop and stop()):
            continue  # no answer in time: nothing can be told of this region
        if same(theirs, reference_seen, catalogue.rtol, catalogue.atol):
            continue
        matches = []
        for mistake in (m for m in catalogue.mistakes if m["region"] == region):
            wrong = _module(
                replace_region(reference, region, mistake["code"], mistake.get("index", 0)),
                {},
            )
            if same(
                theirs,
                observe(probe, wrong[name], wrong, passthrough),
                catalogue.rtol,
                catalogue.atol,
            ):
                matches.append(mistake)
        out[region] = {
            "ids": [m["id"] for m in matches],
            "mistake": " or ".join(m["mistake"] for m in matches) or NO_KNOWN_MISTAKE,
        }
    # A region that matches no known mistake and calls another region's function that differs
    # too may differ only through that call (state a wrong Adam keeps): it is not named.
    callers = {region: set(_calls(reference, names[region])) for region in out}
    wrong = {names[r] for r in out}
    kept = {r: d for r, d in out.items() if d["ids"] or not (callers[r] & (wrong - {names[r]}))}
    if failed is None:
        return kept
    return {r: d for r, d in kept.items() if failed & _own_cells(catalogue, r)}


def _own_cells(catalogue: Catalogue, region: str) -> set[str]:
    """The graded cells that catch one of `region`'s catalogued mistakes."""
    return {c for m in catalogue.mistakes if m["region"] == region for c in m["caught_by"]}


def _calls(reference, name: str) -> list[str]:
    """The global names the reference function `name` uses."""
    return list(_module(reference, {})[name].__code__.co_names)


def described(
    found: dict[str, list[str]], catalogue: Catalogue, names: dict[str, str]
) -> dict[str, str]:
    """Region -> what its function behaves like, in words (the catalogue's `mistake` lines)."""
    text = {m["id"]: m["mistake"] for m in catalogue.mistakes}
    return {
        region: " or ".join(text[i] for i in ids if i in text) or NO_KNOWN_MISTAKE
        for region, ids in found.items()
        if region in names
    }


def sentences(
    found: dict[str, list[str]], catalogue: Catalogue, names: dict[str, str]
) -> list[str]:
    """What the feedback page says of each diagnosed region, in one sentence each."""
    out = []
    for region, what in described(found, catalogue, names).items():
        if what == NO_KNOWN_MISTAKE:
            out.append(
                f"Your {names[region]} gives other numbers than the reference, "
                "and like no known mistake: "
                "compare it with the equations above it."
            )
        else:
            out.append(f"Your {names[region]} behaves like a known mistake: {what}.")
    return out
