"""Scanning SAXS/WAXS: detectors, q-φ integration on stacks, attributes, maps and tomography."""
