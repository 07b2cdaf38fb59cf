"""tito: the course command line (students and instructors)."""
