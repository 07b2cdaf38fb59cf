"""The known mistake behind a failure: each solution region matched against the module's catalogue.

The catalogue (tito/course/catalogue.py) holds, per solution region, a probe: code that calls the
region's function on the visible tests' inputs and returns one answer per call. The judge runs
each probe with the student's function, through its proxy, so the student's code runs in the
jail, and with the reference function. Where the fingerprints of the two differ, it runs the
probe with every catalogued wrong version of that region (instructor code, run here, calling the
reference's other functions) and names the mistakes whose fingerprint the student's has: the
same fingerprints, by the same function, that the student's notebook compares with
mistakes.json. Two are named only when they answer alike (the same mistake written two ways);
with none, the diagnosis is "no known mistake": a wrong name is worse than none. A function
still raising the student version's NotImplementedError is not written yet: nothing is said.
"""

from __future__ import annotations

from ..catalogue import (
    Catalogue,
    answers,
    exported,
    fingerprint_function,
    load,
    region_functions,
    wrong_version,
)

__all__ = ["Catalogue", "diagnose", "described", "load", "region_functions", "sentences"]

NO_KNOWN_MISTAKE = "no known mistake"
NOT_WRITTEN = "raised NotImplementedError"  # what the student version's stub answers


def diagnose(
    reference,
    catalogue: Catalogue,
    student: dict,
    passthrough: tuple = (),
    unanswered: tuple = (),
    before_region=None,
    stop=None,
    failed: set[str] | None = None,
) -> dict[str, dict]:
    """For every region whose student function answers its probe otherwise than the reference:
    the catalogued mistakes it matches, {"ids": [...], "mistake": "..."}; several only when
    they answer alike (the same mistake written two ways), none as NO_KNOWN_MISTAKE.

    `student` maps a function name to the student's (the judge's proxies). Only the probe calls
    the student's function, with the catalogue's own inputs; the reference and the wrong
    versions run here and call the reference's other functions (AdamW's calls the reference's
    Adam), so no value only trusted code computed reaches the student's code. Exceptions of the
    types in `passthrough` (the grader's own) are raised; those in `unanswered` (the judge's
    StudentError) leave the region undiagnosed. With `failed` (the grade ids of the cells that
    failed), a region is named only when a cell that catches one of its catalogued mistakes
    failed (every region is probed: whether a callee differs decides whether its caller is
    named). `before_region(region)` is called before each region's probe (the judge sets its
    time limit there); `stop()` true ends the diagnosis.
    """
    fingerprint = fingerprint_function(reference)
    names = region_functions(reference)
    trusted = exported(reference)
    out = {}
    for region, name in names.items():
        probe = catalogue.probes.get(region)
        if probe is None or name not in student:
            continue
        if before_region:
            before_region(region)
        if stop and stop():
            break
        try:
            theirs = answers(probe, student[name], trusted, passthrough + unanswered)
        except unanswered:
            continue  # no answer in time: nothing can be told of this region
        if NOT_WRITTEN in theirs[:1] or (stop and stop()):
            continue  # the student version's stub: nothing written to diagnose
        mine = fingerprint(theirs)
        if mine == fingerprint(answers(probe, trusted[name], trusted, passthrough)):
            continue
        matches = []
        for mistake in (m for m in catalogue.mistakes if m["region"] == region):
            wrong = wrong_version(reference, mistake)
            if fingerprint(answers(probe, wrong[name], wrong, passthrough)) == mine:
                matches.append(mistake)
        out[region] = {
            "ids": [m["id"] for m in matches],
            "mistake": " or ".join(m["mistake"] for m in matches) or NO_KNOWN_MISTAKE,
        }
    # A region that matches no known mistake and calls another region's function that differs
    # too may differ only through that call (state a wrong Adam keeps): it is not named.
    callers = {region: set(_calls(trusted, names[region])) for region in out}
    wrong = {names[r] for r in out}
    kept = {r: d for r, d in out.items() if d["ids"] or not (callers[r] & (wrong - {names[r]}))}
    if failed is None:
        return kept
    return {r: d for r, d in kept.items() if failed & _own_cells(catalogue, r)}


def _own_cells(catalogue: Catalogue, region: str) -> set[str]:
    """The graded cells that catch one of `region`'s catalogued mistakes."""
    return {c for m in catalogue.mistakes if m["region"] == region for c in m["caught_by"]}


def _calls(trusted: dict, name: str) -> list[str]:
    """The global names the reference function `name` uses."""
    return list(trusted[name].__code__.co_names)


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
