"""What this course plugs into nbgrader's autograde: a preprocessor, and an exporter that
refuses."""

from __future__ import annotations

from nbconvert.exporters import NotebookExporter
from nbgrader.preprocessors import NbGraderPreprocessor


def duplicated_ids(nb) -> list[str]:
    """nbgrader ids that appear on more than one cell, in notebook order."""
    seen, dups = set(), []
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in seen and gid not in dups:
            dups.append(gid)
        seen.add(gid)
    return [d for d in dups if d]


class DropDuplicateGradeCells(NbGraderPreprocessor):
    """Keep one cell per nbgrader id, so a copied cell can neither crash nor double a score.

    Extra copies of a test cell are dropped (the kept one is restored from the gradebook
    by OverwriteCells anyway); extra copies of a solution cell stay as plain code cells, so
    no student code is lost. nbgrader's own DeduplicateIds leaves a cell with empty nbgrader
    metadata that later preprocessors cannot read.
    """

    def preprocess(self, nb, resources):
        seen, cells = set(), []
        for cell in nb.cells:
            md = cell.metadata.get("nbgrader", {})
            gid = md.get("grade_id")
            if gid is None or gid not in seen:
                seen.add(gid)
                cells.append(cell)
                continue
            if md.get("solution"):
                for key in ("nbgrader", "editable", "deletable"):
                    cell.metadata.pop(key, None)
                cells.append(cell)
        nb.cells = cells
        return nb, resources


class OnlyInTheJail(NotebookExporter):
    """The exporter nbgrader's own autograde gets in this course (`nbgrader autograde`, and
    formgrader's Autograde button): it refuses before anything is written or run, since that
    path would execute submissions unconfined and replace the jailed outcome.
    `tito nbgrader autograde` runs nbgrader's sanitizing preprocessors itself (host.prepare)."""

    def __init__(self, *args, **kwargs):
        # nbgrader: a second to import, paid only by the commands that use it
        from nbgrader.converters.base import NbGraderException

        super().__init__(*args, **kwargs)
        message = (
            "this course runs submitted code only in its grading jail: grade with "
            "`tito nbgrader autograde MODULE` (nbgrader's own autograde would run it "
            "unconfined); nothing was changed"
        )
        self.log.error(message)  # nbgrader's command line prints only what was logged, then exits 1
        raise NbGraderException(message)
