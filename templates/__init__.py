"""Built-in Jinja2 templates, one folder per channel (overridable from a user templates directory)."""
