"""What a page may show of a submission: its bytes as data, never as script or hidden tests.

The host passes every notebook it writes to autograded/ (what formgrader and the feedback page
render) through `for_display` first, once:
- each hidden test region becomes one line (`HIDDEN_LINE`); the judge runs the instructor's
  copy, and its message says what a hidden check found;
- markdown becomes sanitised HTML: markdown -> HTML (nbconvert) -> MathML (latex2mathml, for
  a fixed set of TeX commands) -> nh3's allow-list, last (as Jupyter shows markdown: allowed
  HTML the author typed renders, any other tag is taken out). The result is stored as one line
  in a block that MathJax skips, so any markdown renderer passes it through as it is;
- attachments: PNG and JPEG images that the markdown shows are inlined; the rest is dropped;
- outputs: plain text, PNG and JPEG only (images checked to be base64), capped in characters
  and in outputs per cell, with a visible note where something was cut;
- metadata: the notebook's is the instructor notebook's; a cell keeps only the nbgrader
  metadata of a grade id the instructor notebook has (once); raw cells are marked plain text,
  which no page renders;
- markdown past MARKDOWN_CELL_CHARS (or the notebook's MARKDOWN_NOTEBOOK_CHARS) is shown as
  escaped text, without the converters.
`without_hidden_tests` is what the kernel run gets: the submission's code never sees a hidden line.
"""

from __future__ import annotations

import copy
import html
import re

import nbformat
import nh3
from latex2mathml.converter import convert

from ..settings import DisplayLimits

# As nbgrader's ClearHiddenTests matches them: anywhere in a line.
HIDDEN_BEGIN, HIDDEN_END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
HIDDEN_LINE = "# hidden checks: run by the grader, see its message"
KEPT_OUTPUT_TYPES = ("text/plain", "image/png", "image/jpeg")

# HTML that rendered markdown may hold; no class or id (they could steer a page's script or
# MathJax), no style, no forms, no event attributes.
HTML_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "del",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
# Presentation MathML as latex2mathml writes it; no href, style or class.
MATHML_TAGS = {
    "math",
    "menclose",
    "merror",
    "mfrac",
    "mi",
    "mmultiscripts",
    "mn",
    "mo",
    "mover",
    "mpadded",
    "mphantom",
    "mprescripts",
    "mroot",
    "mrow",
    "ms",
    "mspace",
    "msqrt",
    "mstyle",
    "msub",
    "msubsup",
    "msup",
    "mtable",
    "mtd",
    "mtext",
    "mtr",
    "munder",
    "munderover",
    "none",
    "semantics",
    "annotation",
}
MATHML_ATTRIBUTES = [
    "xmlns",
    "display",
    "mathvariant",
    "stretchy",
    "fence",
    "separator",
    "lspace",
    "rspace",
    "accent",
    "accentunder",
    "columnalign",
    "columnlines",
    "columnspacing",
    "rowspacing",
    "rowlines",
    "linethickness",
    "movablelimits",
    "minsize",
    "maxsize",
    "symmetric",
    "width",
    "height",
    "depth",
    "notation",
    "form",
    "largeop",
    "displaystyle",
    "scriptlevel",
    "encoding",
]
_IMAGE_DATA = re.compile(r"data:image/(png|jpeg);base64,[A-Za-z0-9+/=\s]*")
_LINK = re.compile(r"(https?:|mailto:)", re.I)
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")

# TeX commands converted to MathML; TeX with any other command stays text.
TEX_COMMANDS = frozenset(
    """
alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi
varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi
Sigma Upsilon Phi Psi Omega ell nabla partial infty emptyset forall exists neg top bot
frac dfrac tfrac sqrt sum prod int oint lim limsup liminf max min sup inf arg argmax argmin log ln
exp sin cos tan tanh sinh cosh sec det dim ker operatorname mathrel mathop mathbin
cdot cdots ldots dots vdots ddots times div pm mp ast star circ bullet oplus otimes odot
le leq ge geq neq ne approx sim simeq equiv propto ll gg subset subseteq supset supseteq in notin ni
cup cap setminus mid parallel perp
leftarrow rightarrow Leftarrow Rightarrow leftrightarrow Leftrightarrow to gets mapsto implies iff
uparrow downarrow
left right big Big bigg Bigg bigl bigr Bigl Bigr lfloor rfloor lceil rceil langle rangle lvert rvert
lVert rVert vert Vert lbrace rbrace
hat bar tilde vec dot ddot widehat widetilde overline underline overbrace underbrace
mathbb mathcal mathrm mathbf mathit mathsf mathtt boldsymbol text textrm textit textbf
quad qquad
begin end
""".split()
)
_TEX_COMMAND = re.compile(r"\\([A-Za-z]+)")
# nbconvert's markdown keeps TeX between dollars as text (for MathJax); display math first.
_MATH = re.compile(r"\$\$(.+?)\$\$|\$([^$\n]+?)\$", re.S)
_CODE = re.compile(r"(<pre.*?</pre>|<code.*?</code>)", re.S)


# Markdown goes through the converters (whose cost grows faster than its length on crafted
# input) up to this many characters a cell and a notebook; beyond, it is shown as plain text.
MARKDOWN_CELL_CHARS, MARKDOWN_NOTEBOOK_CHARS = 5_000, 100_000


def _attribute_allowed(tag: str, name: str, value: str) -> str | None:
    """`value` when the attribute may stay, else None (nh3's attribute filter)."""
    if tag == "a" and name == "href":
        return value if _LINK.match(value) else None
    if tag == "img" and name == "src":  # only images in the page itself: nothing is fetched
        return value if _IMAGE_DATA.fullmatch(value) else None
    return value


_SANITIZER = nh3.Cleaner(
    tags=HTML_TAGS | MATHML_TAGS,
    attributes={
        "*": set(),  # none on every tag (nh3 would allow lang and title)
        **{tag: set(MATHML_ATTRIBUTES) for tag in MATHML_TAGS},
        "a": {"title", "href"},
        "img": {"alt", "title", "src"},
        "td": {"align"},
        "th": {"align"},
    },
    attribute_filter=_attribute_allowed,
    url_schemes={"http", "https", "mailto", "data"},
    strip_comments=True,
)


def sanitize(rendered: str) -> str:
    """HTML (and MathML) with only the allow-listed tags and attributes: any other tag is taken
    out (its text kept; a script's or a style's dropped)."""
    return _SANITIZER.clean(rendered)


def mathml(rendered: str) -> str:
    """`$…$` and `$$…$$` in rendered HTML (outside code) replaced by MathML, for TEX_COMMANDS
    only."""

    def one(m: re.Match) -> str:
        display, tex = (True, m.group(1)) if m.group(1) is not None else (False, m.group(2))
        tex = html.unescape(tex)
        if not set(_TEX_COMMAND.findall(tex)) <= TEX_COMMANDS:
            return m.group(0)  # shown as the author wrote it
        try:
            return convert(tex, display="block" if display else "inline")
        except Exception:  # TeX this converter cannot read stays text too
            return m.group(0)

    return "".join(
        part if _CODE.fullmatch(part) else _MATH.sub(one, part) for part in _CODE.split(rendered)
    )


def as_text(source: str) -> str:
    """Markdown shown as it was written, as text (linear in its length)."""
    safe = f"<pre>{html.escape(source)}</pre>".replace("\r", "").replace("\n", "&#10;")
    return f'<div class="tex2jax_ignore">{safe}</div>'


def markdown_html(source: str, attachments: dict | None = None) -> str:
    """A markdown cell as sanitised HTML on one line, inside a block MathJax ignores.

    Markdown renderers (nbconvert's, formgrader's) pass an HTML block through unchanged up to
    its first blank line; on one line (newlines written as `&#10;`) nothing of it is read as
    markdown again.
    """
    # nbconvert: 0.3 s to import, which the pages that only sanitise need not pay
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    # Attachments other than PNG and JPEG become an empty image the sanitiser then drops.
    images = {name: {"image/x-not-shown": ""} for name in (attachments or {})}
    images.update(
        {
            name: {mime: data}
            for name, bundle in (attachments or {}).items()
            if isinstance(bundle, dict)
            for mime, data in bundle.items()
            if mime in ("image/png", "image/jpeg")
            and isinstance(data, str)
            and _BASE64.fullmatch(data)
        }
    )
    renderer = IPythonRenderer(
        escape=False, allow_harmful_protocols=False, exclude_anchor_links=True, attachments=images
    )
    try:
        rendered = mathml(MarkdownWithMath(renderer=renderer).render(source))
    except Exception:  # markdown nbconvert cannot render (a missing attachment): shown as text
        return as_text(source)
    safe = sanitize(rendered).strip().replace("\r", "").replace("\n", "&#10;")
    return f'<div class="tex2jax_ignore">{safe}</div>'


# -- hidden tests ----------------------------------------------------------------------------


def _hide(source: str, replacement: str) -> str:
    """`source` with each hidden region replaced by `replacement` (at the region's indentation)."""
    out, inside = [], False
    for line in source.split("\n"):
        if HIDDEN_BEGIN in line:
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + replacement)
        elif HIDDEN_END in line:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def without_hidden_tests(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` in which every hidden test region is one comment line."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if HIDDEN_BEGIN in cell.source:
            cell.source = _hide(cell.source, HIDDEN_LINE)
    return nb


# -- outputs ---------------------------------------------------------------------------------


def _capped(text, limit: int) -> str:
    text = "".join(text) if isinstance(text, list) else str(text)
    if len(text) <= limit:
        return text
    return (
        text[:limit] + f"\n… [{len(text) - limit:,} more characters not shown (max_output_chars)]"
    )


def _note(text: str):
    return nbformat.v4.new_output("stream", name="stderr", text=text)


def outputs_for_display(outputs: list, limits: DisplayLimits, dropped: int = 0) -> list:
    """Outputs a page may show: plain text and checked images, each capped (`dropped`: outputs
    already cut off after these)."""
    shown = []
    for o in outputs[: limits.max_outputs_per_cell]:
        if o.output_type == "stream":
            shown.append(
                nbformat.v4.new_output(
                    "stream", name=o.name, text=_capped(o.text, limits.max_output_chars)
                )
            )
        elif o.output_type == "error":
            tb = _capped("\n".join(o.get("traceback", [])), limits.max_output_chars)
            shown.append(
                nbformat.v4.new_output(
                    "error",
                    ename=_capped(o.ename, 200),
                    evalue=_capped(o.evalue, 2000),
                    traceback=tb.split("\n"),
                )
            )
        else:
            data = {}
            for mime in KEPT_OUTPUT_TYPES:
                value = o.data.get(mime)
                if mime == "text/plain" and value is not None:
                    data[mime] = _capped(value, limits.max_output_chars)
                elif (
                    isinstance(value, str)
                    and len(value) <= limits.max_image_kb << 10
                    and _BASE64.fullmatch(value)
                ):
                    data[mime] = value
                elif value is not None:
                    data["text/plain"] = (
                        f"[an image over {limits.max_image_kb} kB or not base64: not shown]"
                    )
            if data:
                out = nbformat.v4.new_output(o.output_type, data=data)
                if o.output_type == "execute_result":
                    out.execution_count = o.get("execution_count")
                shown.append(out)
    more = len(outputs) + dropped - limits.max_outputs_per_cell
    if more > 0:
        shown.append(_note(f"… {more:,} more outputs not shown (max_outputs_per_cell)"))
    return shown


# -- the whole notebook ----------------------------------------------------------------------


def for_display(
    nb: nbformat.NotebookNode, reference: nbformat.NotebookNode, limits: DisplayLimits
) -> nbformat.NotebookNode:
    """A copy of `nb` that formgrader and the feedback page can render as they are (see above)."""
    known = {
        c.metadata["nbgrader"]["grade_id"]: (c.cell_type, c.metadata["nbgrader"])
        for c in reference.cells
        if c.metadata.get("nbgrader", {}).get("grade_id")
    }
    nb = copy.deepcopy(nb)
    nb.metadata = copy.deepcopy(reference.metadata)
    seen, budget = set(), MARKDOWN_NOTEBOOK_CHARS
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        kind, ours = known.get(gid, (None, None))
        keep = kind == cell.cell_type and gid not in seen
        seen.add(gid)
        cell.metadata = nbformat.NotebookNode({"nbgrader": copy.deepcopy(ours)} if keep else {})
        if HIDDEN_BEGIN in cell.source:
            cell.source = _hide(cell.source, HIDDEN_LINE)
        if cell.cell_type == "markdown":
            rendered = len(cell.source) <= min(MARKDOWN_CELL_CHARS, budget)
            budget -= len(cell.source) if rendered else 0
            cell.source = (
                markdown_html(cell.source, cell.get("attachments"))
                if rendered
                else as_text(cell.source)
            )
        cell.pop("attachments", None)
        if cell.cell_type == "code":
            cell.outputs = outputs_for_display(cell.outputs, limits)
        elif cell.cell_type == "raw":  # shown by no page: nbconvert would print it as HTML
            cell.source = _capped(cell.source, limits.max_output_chars)
            cell.metadata["raw_mimetype"] = "text/plain"
    return nb
