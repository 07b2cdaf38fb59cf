"""tinytorch: a small numpy deep-learning library built module by module in the course."""
