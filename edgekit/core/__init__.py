"""The bottom layer: errors, the registry pattern, atomic file output, lazy imports."""
