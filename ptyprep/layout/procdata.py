"""The ``proc_data`` layout of scanning SAXS/WAXS results: every HDF5 name.

In memory it is ``proc_data[sample][data_key][sub_key]`` (docs/formats.md)::

    run_an.h5   @detectors @qgrid @Nphi @phi_convention @q_unit @layout
      /{sample} @source @header @scan @source_spec
         scan/      slow, fast                  snapped motor positions
         qphi/      @xc @yc (q, φ centres)
            merged/ d (N, Nphi, Nq) + q, phi, q_lo, q_hi, phi_edges  NXdata
                    err (N, Nphi, Nq) optional Poisson standard deviation
         Iq/        merged (N, Nq), subtracted, q          NXdata
         Iphi/      merged (N, Nphi) @qrange, phi          NXdata
         attrs/     <name> (N,) or (N, k)
         maps/      @xc @yc @xc_label @yc_label
            <attr>/ d (n_slow, n_fast), x, y               NXdata
         tomo/<attr>/ d (n, n), x, y                       NXdata
      /overall/maps, /overall/tomo

This module only names things (and encodes JSON attributes); the writer and reader
(:mod:`ptyprep.saxs.store`) move the data.
"""

import json

from . import json_default

LAYOUT_NAME = "ptyprep-procdata"
LAYOUT_VERSION = "1.0"

# root attributes
ATTR_LAYOUT = "layout"
ATTR_LAYOUT_VERSION = "layout_version"
ATTR_DETECTORS = "detectors"
ATTR_QGRID = "qgrid"
ATTR_NPHI = "Nphi"
ATTR_Q_UNIT = "q_unit"
ATTR_PHI_CONVENTION = "phi_convention"
ATTR_COMPLETE = "complete"
ATTR_WATCH = "watch"               # JSON written by ptyprep watch: recipe, sample, frames_expected,
                                   # frames_published, maps_frames, complete, end_reason
Q_UNIT = "1/angstrom"
PHI_CONVENTION = (
    "phi = atan2(-drow, dcol) in degrees from the beam centre: 0 deg along increasing column, "
    "+90 deg along decreasing row (LiX's sense); pyFAI's chi = -phi; Nphi bins cover [-180, 180), "
    "@yc holds bin centres")

# sample attributes
ATTR_SOURCE = "source"
ATTR_HEADER = "header"
ATTR_SCAN = "scan"
ATTR_SOURCE_SPEC = "source_spec"   # JSON {"name", "options", "frames"}: how every rank reopens the raw data
ATTR_QRANGE = "qrange"             # on Iphi: the q window [q1, q2] (1/Å) the profile averages
OVERALL = "overall"

# data keys and sub keys
QPHI, IQ, IPHI, ATTRS, MAPS, TOMO, SCAN = "qphi", "Iq", "Iphi", "attrs", "maps", "tomo", "scan"
DATA_KEYS = (QPHI, IQ, IPHI, ATTRS, MAPS, TOMO)
MERGED, SUBTRACTED = "merged", "subtracted"
SIGNAL = "d"                       # image dataset inside a qphi/maps/tomo sub-key group
ERR = "err"
SCAN_SLOW, SCAN_FAST = "slow", "fast"

# axis attributes and datasets
ATTR_XC, ATTR_YC = "xc", "yc"
ATTR_XC_LABEL, ATTR_YC_LABEL = "xc_label", "yc_label"
AXIS_Q, AXIS_PHI, AXIS_PHI_EDGES = "q", "phi", "phi_edges"
AXIS_Q_LO, AXIS_Q_HI = "q_lo", "q_hi"   # bin bounds (a piecewise grid may have gaps between segments)
AXIS_X, AXIS_Y = "x", "y"
ATTR_FRAMES_DONE = "frames_done"   # on qphi/merged/d: frames written so far (resume)
ATTR_ROT_CEN = "rot_cen"
ATTR_ALGORITHM = "algorithm"
ATTR_T_REF = "T_ref"
ATTR_UNITS = "units"
ATTR_LONG_NAME = "long_name"

MONITOR_ATTRS = ("incident", "transmitted", "transmission")


def sample_path(sn):
    """Path of sample ``sn``; rejects names that would escape the root."""
    if not sn or "/" in sn or sn in (".", ".."):
        raise ValueError(f"sample name {sn!r} cannot be an HDF5 group name; "
                         "rename the scan (no '/' allowed)")
    return f"/{sn}"


def qphi_group(sn, sub=MERGED):
    """Group holding the q-φ cube ``d`` of ``sn``/``sub``."""
    return f"{sample_path(sn)}/{QPHI}/{sub}"


def qphi_path(sn, sub=MERGED):
    """Dataset ``(N, Nphi, Nq)`` of q-φ maps."""
    return f"{qphi_group(sn, sub)}/{SIGNAL}"


def err_path(sn, sub=MERGED):
    """Dataset ``(N, Nphi, Nq)``: Poisson standard deviation of the q-φ maps (optional)."""
    return f"{qphi_group(sn, sub)}/{ERR}"


def iq_path(sn, sub=MERGED):
    """Dataset ``(N, Nq)`` of azimuthally averaged intensities."""
    return f"{sample_path(sn)}/{IQ}/{sub}"


def iphi_path(sn, sub=MERGED):
    """Dataset ``(N, Nphi)`` of azimuthal profiles over ``@qrange``."""
    return f"{sample_path(sn)}/{IPHI}/{sub}"


def attr_path(sn, name):
    """Dataset ``(N,)`` or ``(N, k)`` of attribute ``name``."""
    return f"{sample_path(sn)}/{ATTRS}/{name}"


def map_group(sn, name):
    """Group of map ``name`` (dataset ``d`` plus axes)."""
    return f"{sample_path(sn)}/{MAPS}/{name}"


def tomo_group(sn, name):
    """Group of tomogram ``name`` (dataset ``d`` plus axes)."""
    return f"{sample_path(sn)}/{TOMO}/{name}"


def data_group(sn, data_key):
    """Group of data key ``data_key`` of sample ``sn`` (its members are the sub keys)."""
    return f"{sample_path(sn)}/{data_key}"


def data_path(sn, data_key, sub_key):
    """Dataset addressed by ``proc_data[sn][data_key][sub_key]``."""
    if data_key == QPHI:
        return qphi_path(sn, sub_key)
    if data_key in (IQ, IPHI, ATTRS):
        return f"{data_group(sn, data_key)}/{sub_key}"
    if data_key in (MAPS, TOMO):
        return f"{data_group(sn, data_key)}/{sub_key}/{SIGNAL}"
    raise KeyError(data_key)


def to_json(obj):
    """JSON text of ``obj`` (numpy values made plain)."""
    return json.dumps(obj, default=json_default, sort_keys=True)


def from_json(text):
    """Inverse of :func:`to_json` (accepts bytes)."""
    if isinstance(text, bytes):
        text = text.decode()
    return json.loads(text)
