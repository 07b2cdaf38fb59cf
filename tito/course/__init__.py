"""Course logic behind the `tito` commands: settings, notebooks, export, nbgrader, grading."""
