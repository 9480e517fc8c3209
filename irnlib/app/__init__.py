"""What users run: the irn command, the main job (notebook pipeline), the explorer widget and the notebooks' helpers."""
