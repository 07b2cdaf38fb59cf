"""tito: the course command line (students and instructors)."""

import sys

# jsonschema registers an IRI format checker when rfc3987_syntax is installed, and that
# package compiles its grammar at import: 1.6 s on every `import nbformat`. No notebook
# schema uses IRI formats, so the checker is never needed; without it jsonschema skips it.
sys.modules.setdefault("rfc3987_syntax", None)
