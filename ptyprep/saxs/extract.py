"""Attribute extraction helpers: built-in look-up, axis keywords, frame-naming errors."""

import inspect

import numpy as np

from ..engine.collective import gather
from ..engine.shares import chunk_shares
from ..errors import PtyprepError, RecipeError
from ..layout import procdata as L
from . import store as W
from . import attrs as A

#: data keys an attribute function may read
EXTRACT_KEYS = (L.QPHI, L.IQ, L.IPHI, L.ATTRS)


def resolve_func(func):
    """A callable from a callable or the name of a built-in (``get_roi``, ``hop``, ...)."""
    if isinstance(func, str):
        if func not in A.BUILTINS:
            raise RecipeError(f"unknown attribute function {func!r}; built-ins: "
                              f"{', '.join(A.BUILTINS)}")
        return A.BUILTINS[func]
    if not callable(func):
        raise RecipeError(f"attribute function {func!r} is neither callable nor a built-in name")
    return func


def source_shapes(f, sns, data_key, sub_key):
    """Shape of ``proc_data[s][data_key][sub_key]`` of every sample (RecipeError if absent)."""
    if data_key not in EXTRACT_KEYS:
        raise RecipeError(f"data key {data_key!r} is not one of {', '.join(EXTRACT_KEYS)}")
    out = {}
    for s in sns:
        if s not in W.samples(f):
            raise RecipeError(f"sample {s!r} is not imported; samples: {W.samples(f)}")
        path = L.data_path(s, data_key, sub_key)
        if path not in f:
            parent = f.get(L.data_group(s, data_key))
            subs = [k for k in parent if k not in (L.AXIS_Q, L.AXIS_PHI)] if parent is not None else []
            raise RecipeError(f"sub key {sub_key!r} of data key {data_key!r} does not exist "
                              f"for sample {s!r} (existing: {subs}); run process(), "
                              "extract_iphi() or subtract_background() first")
        out[s] = f[path].shape
    return out


def axis_kwargs(func, q, phi):
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}
    anyk = any(p.kind is p.VAR_KEYWORD for p in params.values())
    return {k: v for k, v in (("q", q), ("phi", phi)) if anyk or k in params}


def apply(func, data, share, sn, stack, kwargs):
    """Apply ``func`` to a share: whole stack or frame by frame; errors name the frame."""
    name = getattr(func, "__name__", repr(func))
    if stack:
        try:
            return np.asarray(func(data, **kwargs), dtype=np.float64)
        except PtyprepError:
            raise
        except Exception as exc:  # a user function may raise anything; name where it failed
            raise RecipeError(f"attribute function {name} failed on sample {sn!r} frames "
                              f"{share[0]}..{share[-1]}: {exc}") from exc
    out = []
    for i, frame in zip(share, data):
        try:
            out.append(np.asarray(func(frame, **kwargs), dtype=np.float64))
        except PtyprepError:
            raise
        except Exception as exc:  # a user function may raise anything; name the frame
            raise RecipeError(f"attribute function {name} failed on sample {sn!r} frame {i}: "
                              f"{type(exc).__name__}: {exc}") from exc
    return np.stack(out)


def extract_chunks(comm, ds, sn, n, func, names, chunk, kwargs):
    """Collective: ``func`` over the first ``n`` frames of dataset ``ds``, chunk by chunk.

    Each chunk is split over the ranks (every rank reads its share); rank 0
    gathers and returns the ``(n, ...)`` values, other ranks None.  A failure on
    any rank raises the same error on all.
    """
    stack = getattr(func, "stack", False)
    pieces = []
    for share in chunk_shares(0, n, chunk, comm.size):
        mine = share.indices(comm.rank)

        def make():
            res = None
            if len(mine):
                res = check_names(apply(func, ds[mine[0]:mine[-1] + 1], mine, sn, stack, kwargs),
                                  names)
            return (None if res is None else res.shape[1:]), lambda trails: [_values(res, trails)]

        _, joined = gather(comm, make)
        if joined is not None:
            pieces.append(joined[0])
    return np.concatenate(pieces) if pieces else None


def _values(res, trails):
    """This rank's values as float64; an empty share takes the others' trailing shape."""
    if res is None:
        res = np.zeros((0,) + tuple(next((t for t in trails if t is not None), ())))
    return np.ascontiguousarray(res, dtype=np.float64)


def check_names(res, names):
    """``res`` (n, ...) unless a vector-valued result does not match its ``names``."""
    if len(names) > 1 and (res.ndim != 2 or res.shape[1] != len(names)):
        raise RecipeError(f"attribute function gave values of shape {res.shape[1:]} per "
                          f"frame for the {len(names)} names {names}; they must match")
    return res


def qrange_pair(qrange):
    """``(q1, q2)`` floats of a ``[q1, q2]`` window in 1/Å (RecipeError if malformed)."""
    try:
        q1, q2 = (float(v) for v in qrange)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"qrange = {qrange!r} must be [q1, q2] in 1/Å") from exc
    if not q1 <= q2:
        raise RecipeError(f"qrange = [{q1}, {q2}] is reversed; give [low, high] in 1/Å")
    return q1, q2


def chunk_attrs(data, share, sn, specs, q, phi, iphi_qrange=None):
    """Attributes of a chunk of frames held in memory (``ptyprep watch``).

    Gives the values ``ScanAnalysis.extract_iphi`` / ``extract_attr`` compute
    for these frames from the file, because it is given the same float32 rows.

    Parameters
    ----------
    data : dict
        ``{"qphi": (n, Nphi, Nq), "Iq": (n, Nq)}`` float32 rows of frames ``share``.
    share : (n,) int array
        Their frame indices (named in errors).
    specs : sequence of dict
        Recipe ``[saxs] attrs`` entries (``name``, ``func``, ``data_key``, ``sub_key``, ``kwargs``).
    q, phi : ndarray
        Bin centres.
    iphi_qrange : [q1, q2], optional
        Also the ``Iphi`` rows (float32), which attributes may read.

    Returns
    -------
    iphi : (n, Nphi) float32 ndarray or None
    values : dict
        ``{attribute name: (n,) or (n, k) float64}``.
    """
    data, values, iphi = dict(data), {}, None
    if iphi_qrange:
        iphi = apply(A.iphi, data[L.QPHI], share, sn, True,
                     {**axis_kwargs(A.iphi, q, phi), "qrange": list(iphi_qrange)})
        iphi = data[L.IPHI] = iphi.astype(np.float32)
    for spec in specs:
        func, names = resolve_func(spec["func"]), spec["name"]
        names = [names] if isinstance(names, str) else list(names)
        if spec["sub_key"] != L.MERGED or spec["data_key"] not in data:
            raise RecipeError(f"attribute {names} reads {spec['data_key']}/{spec['sub_key']}, "
                              "which is not made while following a scan (merged qphi, Iq, and "
                              "Iphi when saxs.iphi_qrange is set)")
        res = check_names(apply(func, data[spec["data_key"]], share, sn,
                                getattr(func, "stack", False),
                                {**axis_kwargs(func, q, phi), **spec["kwargs"]}), names)
        for k, name in enumerate(names):
            values[name] = res if len(names) == 1 else res[:, k]
    return iphi, values
