"""Exports of a prepared ptychography scan to the formats of other reconstruction codes.

=============  ===============================  ============================================
format         output beside ``dfile``          read by
=============  ===============================  ============================================
``cxi``        ``<stem>.cxi``                   ptychodus (its CXI reader), any CXI reader
``ptychodus``  ``<stem>_ptychodus/``            ptychodus ``load_diffraction_data`` and
                                                ``load_product`` (and so pty-chi)
``ptylab``     ``<stem>_ptylab.hdf5``           PtyLab ``ExperimentalData(file, "CPM")``
``fold_slice`` ``<stem>_fold_slice.h5``         PtychoShelves / fold_slice
=============  ===============================  ============================================

Each is a format of the engine (:mod:`ptyprep.exports.format`): name it in a recipe,
``[output] format = ["ptyd", "cxi"]``, and the scan is prepared once for all; or convert
an existing ``.ptyd`` with :func:`ptyprep.export` (``ptyprep export``,
:mod:`ptyprep.convert`).  docs/exports.md lists
each code's conventions and where in its sources they come from.
"""
