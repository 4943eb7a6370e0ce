"""stor.torch (filled in below)."""
