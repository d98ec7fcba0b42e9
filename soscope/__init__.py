"""soscope."""
