"""Command groups of the tito CLI; each command is a short function calling tito.course."""
