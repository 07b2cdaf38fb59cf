"""What a page may show of a submission (display.py): markup as data, hidden tests as one line."""

from __future__ import annotations

import base64

import nbformat
import pytest

from tito.course.grading import display
from tito.course.grading.display import HIDDEN_LINE, DisplayLimits

LIMITS = DisplayLimits(max_cells=100, max_outputs_per_cell=3, max_output_chars=40, max_image_kb=1)
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 20).decode()


def test_sanitize_keeps_harmless_markup_and_takes_out_the_rest():
    """The last step, on what the converters made: tags, attributes and links off the list go."""
    rendered = (
        '<p id="x" class="tex2jax_process">ok <b>bold</b></p><script>alert(1)</script>'
        '<img src="x" onerror="alert(1)"><a href="javascript:x()">l</a>'
        '<a href="https://e.org" onclick="y()">e</a>'
        '<svg onload="alert(1)"></svg><img src="data:image/svg+xml;base64,PHN2Zz4=">'
        '<img src="data:image/png;base64,AAAA" alt="a"><!-- note --><p title="t" lang="x">t</p>'
    )
    assert display.sanitize(rendered) == (
        '<p>ok <b>bold</b></p><img><a rel="noopener noreferrer">l</a>'
        '<a href="https://e.org" rel="noopener noreferrer">e</a><img>'
        '<img src="data:image/png;base64,AAAA" alt="a"><p>t</p>'
    )


def test_mathematics_becomes_mathml_for_known_commands_only_and_is_sanitised_after():
    out = display.mathml("<p>$x_1 &lt; 2$ and $$\\frac{a}{b}$$ but <code>$HOME$</code></p>")
    assert (
        out.count("<math") == 2
        and '<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">' in out
    )
    assert "<mo>&#x0003C;</mo>" in out and "<code>$HOME$</code>" in out
    # \href and \style are not in the allow-list: the TeX stays text, nothing becomes an attribute.
    for tex in ["$\\href{javascript:alert(1)}{x}$", "$\\style{color:red}{x}$", "$\\class{a}{x}$"]:
        assert display.mathml(f"<p>{tex}</p>") == f"<p>{tex}</p>"
    # \text is allowed; a tag it holds is taken out by the last step, script and all.
    html = display.markdown_html("$\\text{<script>alert(1)</script>} + \\frac{1}{2}$")
    assert "<script" not in html and "alert(1)" not in html and "<mfrac>" in html


def test_markdown_is_one_line_of_html_that_markdown_renderers_pass_through():
    from nbconvert.filters.markdown import markdown2html

    source = (
        "# Answer\n\n<img src=x onerror=alert(1)>\n\n```\ncode\n\nmore\n```\n\n"
        "[l](javascript:alert(1)) $\\alpha$"
    )
    safe = display.markdown_html(source)
    assert "\n" not in safe and safe.startswith('<div class="tex2jax_ignore"><h1>Answer</h1>')
    assert "onerror" not in safe and "javascript" not in safe and "<mi>α</mi>" in safe
    # formgrader renders cell sources with nbconvert's markdown2html: the block comes back whole.
    assert markdown2html(safe).strip() == safe


def test_attached_png_is_inlined_and_other_attachments_are_dropped():
    source = "![a](attachment:a.png) ![s](attachment:s.svg)"
    safe = display.markdown_html(
        source, {"a.png": {"image/png": PNG}, "s.svg": {"image/svg+xml": "<svg onload=x()>"}}
    )
    assert f'src="data:image/png;base64,{PNG}"' in safe
    assert safe.count("<img") == 2 and "svg" not in safe.replace('alt="s"', "")


def _notebook():
    ref_md = {
        "grade": True,
        "solution": False,
        "locked": True,
        "points": 2,
        "grade_id": "t",
        "schema_version": 3,
    }
    test = nbformat.v4.new_code_cell(
        "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(7) == 14\n"
        "### END HIDDEN TESTS\nassert f(0) == 0",
        id="t",
        metadata={"nbgrader": ref_md},
    )
    answer = nbformat.v4.new_markdown_cell(
        "<b onclick=x()>mine</b>",
        id="m",
        metadata={"nbgrader": {"grade_id": "nope", "solution": True}, "tags": ['"><script>']},
    )
    reference = nbformat.v4.new_notebook(
        cells=[test], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    )
    return reference, nbformat.v4.new_notebook(
        cells=[test, answer], metadata={"title": "<script>x()</script>"}
    )


def test_for_display_hides_hidden_tests_and_keeps_only_the_instructors_metadata():
    reference, nb = _notebook()
    shown = display.for_display(nb, reference, LIMITS)
    assert shown.cells[0].source == f"assert f(1) == 2\n{HIDDEN_LINE}\nassert f(0) == 0"
    assert shown.cells[0].metadata == reference.cells[0].metadata
    assert (
        shown.cells[1].metadata == {}
        and shown.cells[1].source == '<div class="tex2jax_ignore"><p><b>mine</b></p></div>'
    )
    assert shown.metadata == reference.metadata
    assert "f(7)" not in nbformat.writes(shown) and "f(7)" not in nbformat.writes(
        display.without_hidden_tests(nb)
    )
    assert nb.cells[0].source.count("f(7)") == 1  # the input is not changed


def test_outputs_are_capped_in_characters_and_count_and_images_must_be_base64():
    outs = [
        nbformat.v4.new_output("stream", name="stdout", text="x" * 100),
        nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/html": "<script>"}),
        nbformat.v4.new_output("display_data", data={"image/png": '"><script>alert(1)</script>'}),
        nbformat.v4.new_output("stream", name="stdout", text="never shown"),
        nbformat.v4.new_output("stream", name="stdout", text="nor this"),
    ]
    stream, image, bad, note = display.outputs_for_display(outs, LIMITS)
    assert stream.text == "x" * 40 + "\n… [60 more characters not shown (max_output_chars)]"
    assert dict(image.data) == {"image/png": PNG}
    assert dict(bad.data) == {"text/plain": "[an image over 1 kB or not base64: not shown]"}
    assert note.text == "… 2 more outputs not shown (max_outputs_per_cell)"


@pytest.mark.parametrize(
    "value, written",
    [
        ("1e5", '"1e5"'),
        ("0x1", '"0x1"'),
        ("=HYPERLINK(1)", '"\'=HYPERLINK(1)"'),
        ("-2", '"\'-2"'),
        (3.5, "3.5"),
    ],
)
def test_spreadsheet_fields_are_text_unless_numbers(value, written):
    import io

    from tito.course.grading.lms import spreadsheet_text, spreadsheet_writer

    out = io.StringIO()
    spreadsheet_writer(out).writerow([spreadsheet_text(value)])
    assert out.getvalue() == written + "\n"


def test_raw_cells_are_rendered_by_no_page_and_hidden_markers_count_anywhere_in_a_line():
    from nbconvert import HTMLExporter

    raw = nbformat.v4.new_raw_cell(
        '<div class="nbgrader_cell"><b id="q1">fake-button-7</b></div>', id="r"
    )
    md = nbformat.v4.new_markdown_cell(
        "before\n# BEGIN HIDDEN TESTS\nsecret-answer-42\n# END HIDDEN TESTS", id="m"
    )
    shown = display.for_display(
        nbformat.v4.new_notebook(cells=[raw, md]), nbformat.v4.new_notebook(), LIMITS
    )
    assert shown.cells[0].metadata == {"raw_mimetype": "text/plain"}
    page, _ = HTMLExporter(template_name="classic").from_notebook_node(shown)
    assert "fake-button-7" not in page
    assert (
        "secret-answer-42" not in page
        and "hidden checks: run by the grader, see its message" in page
    )


def test_markdown_too_long_for_the_converters_is_shown_as_text():
    long = (
        "<pre>x " * 1000
    )  # nested and unclosed: the converters' cost grows faster than its length
    shown = display.for_display(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(long, id="x")]),
        nbformat.v4.new_notebook(),
        LIMITS,
    )
    assert (
        shown.cells[0].source
        == '<div class="tex2jax_ignore"><pre>'
        + long.replace("<", "&lt;").replace(">", "&gt;")
        + "</pre></div>"
    )
