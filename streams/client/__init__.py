"""The producers' side: the SDK, the `send`/`prefs`/`tail` commands and the demo."""
