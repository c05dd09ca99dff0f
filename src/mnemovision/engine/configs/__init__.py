"""Bundled engine configs (Python files read by mmengine Config.fromfile; resolve by name)."""
