"""The web inspector (`hookinspect web`, `listen --web`)."""
