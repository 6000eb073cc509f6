"""NeXus names the outputs carry so that silx, h5web and PyMca show them with their axes."""

NX_CLASS = "NX_class"
NXDATA = "NXdata"
#: On an NXdata group: the name of its signal dataset, and of one axis dataset per dimension
#: ("." for a dimension without one); ``<axis>_indices`` says which dimension an axis is.
SIGNAL, AXES, INDICES_SUFFIX = "signal", "axes", "_indices"
