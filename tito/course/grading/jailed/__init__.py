"""Code that runs inside the jail: the notebook run and the judge's student process."""
