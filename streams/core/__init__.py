"""The routing rules, pure: models, validation, templates, clock and the rules' settings. No I/O."""
