"""One proc_data file that both ptyprep and lixtools read: the lixtools half of the schema.

lixtools (``h5xs_an.load_data``) walks ``/{sample}/{data_key}/{sub_key}`` and needs

* on every data-key group ``@type``: ``"MatrixWithCoords"`` (``qphi``, ``maps``, ``tomo``:
  each sub key a group holding ``d`` and maybe ``err``, the shared ``@xc @yc @xc_label
  @yc_label`` on the data-key group) or ``"ndarray"`` (``attrs``, ``Iq``, ``Iphi``,
  ``scan``: each sub key a dataset);
* on every MatrixWithCoords sub-key group ``@len``: the number of frames stacked in ``d``
  (1 for a map or a tomogram);
* at the root ``@pre_proc = "2D"``, ``@Nphi``, ``@qgrid`` and ``@detectors``, a JSON list of
  py4xs ``DetectorConfig`` dicts (each of ptyprep's also carries its own description
  under ``"ptyprep"``);
* on every sample ``@scan`` with ``shape``, ``snaking``, ``fast_axis`` and ``slow_axis``
  (``{"motor", "pos"}``).

ptyprep writes these beside its own NeXus attributes (:mod:`ptyprep.saxs.store` calls
the functions here), and reads a file lixtools wrote through :func:`ptyprep_scan` and
:func:`ptyprep_detector`.  Only names and small JSON records: no data moves here.
"""

import logging

import numpy as np

from ..errors import RecipeError
from ..layout import procdata as L

log = logging.getLogger(__name__)

ATTR_TYPE, ATTR_LEN, ATTR_PRE_PROC = "type", "len", "pre_proc"
MATRIX, NDARRAY = "MatrixWithCoords", "ndarray"
PRE_PROC = "2D"
#: lixtools' ``@type`` of each data key ptyprep writes
DATA_KEY_TYPES = {L.QPHI: MATRIX, L.MAPS: MATRIX, L.TOMO: MATRIX,
                  L.ATTRS: NDARRAY, L.IQ: NDARRAY, L.IPHI: NDARRAY, L.SCAN: NDARRAY}


def mark_data_key(group):
    """Give the data-key ``group`` (``/{sn}/{key}``) lixtools' ``@type`` if it has none."""
    kind = DATA_KEY_TYPES.get(group.name.rsplit("/", 1)[-1])
    if kind is not None and ATTR_TYPE not in group.attrs:
        group.attrs[ATTR_TYPE] = kind


def mark_matrix(group, n):
    """Set ``@len = n`` on a MatrixWithCoords sub-key ``group`` and ``@type`` on its parent."""
    group.attrs[ATTR_LEN] = np.int64(n)
    mark_data_key(group.parent)


def mark_root(f):
    """``@pre_proc`` of a file ptyprep creates (q-φ maps, as lixtools' ``pre_proc="2D"``)."""
    if ATTR_PRE_PROC not in f.attrs:
        f.attrs[ATTR_PRE_PROC] = PRE_PROC


# -- the scan record ------------------------------------------------------------------------------
def lix_scan(scan):
    """ptyprep's scan record with lixtools' keys added (``shape``, ``snaking``, axes).

    Parameters
    ----------
    scan : dict
        ptyprep's record (``shape``, ``snake``, ``slow_positions``, ``fast_positions``,
        ``slow_motor``, ``fast_motor``, ...).

    Returns
    -------
    dict
        The same record plus ``snaking`` and ``fast_axis``/``slow_axis`` =
        ``{"motor": name, "pos": [positions]}``.
    """
    return {**scan, "shape": [int(v) for v in scan["shape"]], "snaking": bool(scan["snake"]),
            "fast_axis": {"motor": scan["fast_motor"], "pos": [float(v) for v in scan["fast_positions"]]},
            "slow_axis": {"motor": scan["slow_motor"], "pos": [float(v) for v in scan["slow_positions"]]}}


def ptyprep_scan(record, prec=0.001):
    """ptyprep's scan record from one lixtools wrote (unchanged when it is ptyprep's).

    Parameters
    ----------
    record : dict
        ``@scan`` of a sample: lixtools' ``{"shape", "snaking", "fast_axis", "slow_axis"}``
        or ptyprep's record.
    prec : float
        Motor precision recorded when the file does not say (lixtools' default 0.001).

    Returns
    -------
    dict
    """
    if "slow_positions" in record:
        return record
    shape = [int(v) for v in record["shape"]]
    slow, fast = record["slow_axis"], record["fast_axis"]
    return {**record, "shape": shape, "snake": bool(record.get("snaking", False)),
            "n_frames": int(np.prod(shape)), "slow_motor": str(slow["motor"]),
            "fast_motor": str(fast["motor"]), "slow_positions": [float(v) for v in slow["pos"]],
            "fast_positions": [float(v) for v in fast["pos"]], "prec": float(prec)}


# -- detectors ------------------------------------------------------------------------------------
def detector_entry(detector):
    """The ``@detectors`` entry of a :class:`~ptyprep.saxs.Detector`.

    A py4xs ``DetectorConfig`` dict (what lixtools rebuilds its detectors from) with
    ptyprep's own description under ``"ptyprep"``; when the geometry has no py4xs
    equivalent, only the ptyprep description (lixtools then cannot rebuild that one).
    """
    try:
        return detector.to_py4xs()                     # carries to_json() under "ptyprep"
    except RecipeError as exc:                         # a geometry py4xs cannot describe
        log.warning("detector %s has no py4xs description (%s); lixtools will not rebuild it",
                    detector.name, exc)
        return {"ptyprep": detector.to_json()}


def ptyprep_detector(entry):
    """ptyprep's description of one ``@detectors`` entry (ptyprep's own, or lixtools')."""
    if "ptyprep" in entry:
        return entry["ptyprep"]
    if "exp_para" in entry or "extension" in entry:
        return {"name": entry.get("extension") or "?", "lixtools": entry}
    return entry

