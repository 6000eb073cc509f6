"""On-disk layouts: every HDF5 path and attribute name of the files ptyprep writes."""
