# Before anything imports nbformat, also in the processes a test spawns (the catalogue's pool
# imports its module by name): tito/__init__.py keeps a slow, unused import out.
import tito  # noqa: F401
