"""The stack lifecycle both faces call: up, preview, down, sleep, wake, reap (lifecycle.py), over the engine seam."""
