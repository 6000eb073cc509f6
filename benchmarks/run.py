"""Run every benchmark and print the table of ratios measured in this run.

    python benchmarks/run.py [--quick] [--json FILE] [--only integrate,ptycho,...]

Every case runs in its own process with one thread per process (OMP/OpenBLAS/MKL = 1);
the data are generated in a temporary folder. The ratios are the contract (see
benchmarks/README.md); absolute numbers are printed for reference.

Every ratio of the contract is the **median of several interleaved rounds** (each round
times both sides once: A, B, A, B, ..., so a slow spell of the shared machine falls on both),
printed with its spread (min–max over the rounds); a target is met or missed by the median.
The integration, ptychography and crop-on-read cases run their benchmark module's own
measurement in a worker of this script (``--worker NAME``) that keeps every round:
``bench_integrate.run`` through :func:`_common.record_rounds`, ``bench_ptycho.contract_times``
and ``bench_eiger_crop.time_reads`` called one round at a time. ``bench_scaling.py`` does its
rounds itself (one ``mpiexec -n 1`` then one ``-n 2`` launch per round).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: I001  (pins threads before numpy)

#: figures of ``--json`` (each the median over the rounds; ``<key>_spread`` is [min, max] of
#: the rounds, None for a single measurement)
KEYS = ("integrate_vs_pyfai_csr", "integrate_vs_pyfai_best", "integrate_maxrel_vs_pyfai",
        "ptycho_vs_read_limit", "eiger_crop_read_vs_h5py", "scaling_2_ranks",
        "rss_per_rank_mb_1k", "rss_per_rank_mb_10k",
        "ptycho_scaling_2_ranks_append", "ptycho_scaling_2_ranks_link",
        "ptycho_scaling_2_ranks_uncompressed", "integrate_ms_per_frame_eiger1m_500x180")

#: q-φ integration per frame against pyFAI's own engines, one core (issue 18): every detector
#: and bin count against csr, the Eiger 1M rows against csc too
INTEGRATE_TARGETS = {"csr": 15.0, "csc": 10.0}
#: bitshuffle-LZ4 crop-on-read against h5py's whole-frame read and crop (issue 18)
CROP_TARGET = 3.5

#: interleaved rounds per ratio
ROUNDS = {"quick": 5, "full": 7}

#: name: (script, or None for a worker of this script; arguments in --quick mode; otherwise).
#: A worker's arguments are the keyword arguments of its ``work_<name>`` function.
CASES = {
    "integrate": (None, {"frames": 32, "rounds": ROUNDS["quick"]},
                  {"frames": 32, "rounds": ROUNDS["full"]}),
    "ptycho": (None, {"frames": 2000, "repeat": 1, "extra": False, "rounds": ROUNDS["quick"]},
               {"frames": 2000, "repeat": 2, "extra": True, "rounds": ROUNDS["full"]}),
    "eiger_crop": (None, {"frames": 150, "rounds": ROUNDS["quick"]},
                   {"frames": 1000, "rounds": ROUNDS["full"]}),
    "scaling": ("bench_scaling.py",
                ["--frames", "256", "--int-frames", "64", "--ptycho-frames", "4000",
                 "--ptycho-raw-frames", "2000", "--rounds", str(ROUNDS["quick"])],
                ["--frames", "512", "--int-frames", "128", "--ptycho-frames", "8000",
                 "--ptycho-raw-frames", "2000", "--rounds", str(ROUNDS["full"])]),
    "memory": ("bench_memory.py", [], []),
}


def put_rounds(d, key, values):
    """``d[key]`` = median of the per-round ``values``, ``d[key + "_spread"]`` = [min, max],
    ``d["stats"][key]`` = :func:`_common.round_stats` (the rounds themselves included)."""
    st = C.round_stats(values)
    d[key] = st["median"]
    d[key + "_spread"] = [st["min"], st["max"]]
    d.setdefault("stats", {})[key] = st
    return d


def work_integrate(frames, rounds, with_4m=True):
    """``bench_integrate.run`` with ``rounds`` rounds (ours, csr, csc once each), every
    round kept: each row's ratios become medians of the per-round ratios."""
    import bench_integrate as B

    with C.record_rounds() as log:
        out = B.run(frames, rounds, with_4m)
    rows = out["rows"]
    kept = len(log) == len(rows) and all({"ours", "csr", "csc"} <= set(t) for t in log)
    for i, row in enumerate(rows):
        # every timed side the row reports in ms per frame: ours, csr, csc (and scipy, ours
        # on the path without numba, when bench_integrate times it)
        sides = [k for k in ("ours", "scipy", "csr", "csc") if f"{k}_ms" in row]
        ratios = [f"{a}_vs_{b}" for a in ("ours", "scipy") for b in ("csr", "csc")]
        row["best"] = {k: row[k] for k in [f"{s}_ms" for s in sides] + ["vs_csr", "vs_csc",
                       "vs_best", "scipy_vs_csr", "scipy_vs_csc"] if k in row}
        if kept and set(sides) <= set(log[i]):
            t = log[i]
            # the row's best-of figures give the per-frame scale of each side (frames a call)
            ms = {k: [x * row[f"{k}_ms"] / min(t[k]) for x in t[k]] for k in sides}
        else:               # the module no longer times one interleaved call per row
            ms = {k: [row[f"{k}_ms"]] for k in sides}
            row["rounds_missing"] = True
        for k in sides:
            put_rounds(row, f"{k}_ms", ms[k])
        for name in ratios:
            a, b = name.split("_vs_")
            if a in ms and b in ms:
                put_rounds(row, name.replace("ours_", ""), C.paired_ratios(ms[b], ms[a]))
        put_rounds(row, "vs_best", [min(a, b) / o for a, b, o in zip(ms["csr"], ms["csc"],
                                                                     ms["ours"])])
    one_m = [r for r in rows if r["detector"] == "eiger1m"]
    for key, col in (("integrate_vs_pyfai_csr", "vs_csr"), ("integrate_vs_pyfai_best", "vs_best")):
        worst = min(one_m, key=lambda r: r[col])
        out[key], out[key + "_spread"] = worst[col], worst[col + "_spread"]
    four = [r for r in rows if r["detector"] == "eiger4m"]
    if four:
        worst = min(four, key=lambda r: r["vs_csr"])
        out["integrate_4m_vs_pyfai_csr"] = worst["vs_csr"]
        out["integrate_4m_vs_pyfai_csr_spread"] = worst["vs_csr_spread"]
    for r in one_m:
        if r["bins"] == "500x180":
            out["integrate_ms_per_frame_eiger1m_500x180"] = r["ours_ms"]
            out["integrate_ms_per_frame_eiger1m_500x180_spread"] = r["ours_ms_spread"]
    out["rounds"] = rounds
    return out


def work_ptycho(frames, repeat, extra, rounds, folder=None):
    """``bench_ptycho.run`` with the contract's ``rounds`` rounds (plain read, rebin 1,
    rebin 2 once each) kept: the rebin ratios become medians of per-round read / rebin."""
    import bench_ptycho as P

    from ptyprep.fast.allocator import keep_freed_memory

    keep_freed_memory()          # as bench_ptycho.py's main and `ptyprep run` do
    log, original = [], P.contract_times

    def contract_times(raw, tmp, n, count):
        per = [original(raw, tmp, n, 1) for _ in range(count)]
        log.append(per)
        return {k: min(r[k] for r in per) for k in per[0]}

    P.contract_times, P.CONTRACT_ROUNDS = contract_times, rounds
    try:
        out = P.run(frames, repeat, False, folder, extra)
    finally:
        P.contract_times = original
    per = log[-1]
    read = [r["read"] for r in per]
    put_rounds(out, "read_s", read)
    out["read_fps"] = frames / out["read_s"]
    for rebin in (1, 2):
        c = out["cases"][f"rebin{rebin}"]
        c["best_seconds"], c["best_ratio"] = c["seconds"], c["ratio"]
        t = [r[rebin] for r in per]
        put_rounds(c, "seconds", t)
        put_rounds(c, "ratio", C.paired_ratios(read, t))
        c["fps"], c["ms_per_frame"] = frames / c["seconds"], 1e3 * c["seconds"] / frames
    worst = min(("rebin1", "rebin2"), key=lambda k: out["cases"][k]["ratio"])
    out["ptycho_vs_read_limit"] = out["cases"][worst]["ratio"]
    out["ptycho_vs_read_limit_spread"] = out["cases"][worst]["ratio_spread"]
    out["rounds"] = len(per)
    return out


def work_eiger_crop(frames, rounds, real=True, folder=None):
    """``bench_eiger_crop.run`` with ``time_reads`` called once per round (whole, hyperslab,
    ours, ... once each), ``rounds`` rounds: the ratios become medians of per-round ratios."""
    import bench_eiger_crop as E

    log, original = {}, E.time_reads

    def time_reads(path, roi, repeat=3, dataset="/entry/data/data"):
        per = [original(path, roi, 1, dataset) for _ in range(repeat)]
        log[Path(path).name] = per
        return {k: min(r[k] for r in per) for k in per[0]}

    E.time_reads = time_reads
    try:
        out = E.run(frames, rounds, real, folder)
    finally:
        E.time_reads = original
    for key, name in (("synthetic", "eiger_bslz4.h5"), ("blosc2", "eiger_blosc2.h5"),
                      ("real_eiger4m", E.REAL.name)):
        if key not in out or name not in log:
            continue
        d, per = out[key], log[name]
        d["ms_per_frame_best"] = d["ms_per_frame"]
        d["ms_per_frame"] = {k: 1e3 * C.median([r[k] for r in per]) for k in per[0]}
        d["fps"] = {k: 1e3 / v for k, v in d["ms_per_frame"].items()}
        for ratio, (a, b) in (("ours_vs_whole", ("whole", "ours")),
                              ("ours_vs_hyperslab", ("hyperslab", "ours")),
                              ("full_frame_ours_vs_h5py", ("whole_full", "ours_full"))):
            put_rounds(d, ratio, C.paired_ratios([r[a] for r in per], [r[b] for r in per]))
        d["rounds"] = len(per)
    syn = out["synthetic"]
    out["eiger_crop_read_vs_h5py"] = syn["ours_vs_whole"]
    out["eiger_crop_read_vs_h5py_spread"] = syn["ours_vs_whole_spread"]
    return out


WORKERS = {"integrate": work_integrate, "ptycho": work_ptycho, "eiger_crop": work_eiger_crop}


def run_case(name, quick, tmp):
    script, quick_args, full_args = CASES[name]
    args = quick_args if quick else full_args
    out = Path(tmp) / f"{name}.json"
    if script is None:
        kwargs = dict(args, **({} if name == "integrate" else {"folder": str(tmp)}))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
               json.dumps(kwargs), str(out)]
    else:
        cmd = [sys.executable, str(C.HERE / script), *args, "--json-out", str(out),
               "--tmp", str(tmp)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=C.single_thread_env(),
                         cwd=str(C.HERE))
    seconds = time.perf_counter() - t0
    if res.returncode:
        print(f"{name}: FAILED ({' '.join(cmd)})\n{res.stderr[-3000:]}", file=sys.stderr)
        return {"error": res.stderr[-3000:], "wall_s": seconds}
    data = json.loads(out.read_text())
    data["wall_s"] = seconds
    return data


def _fmt(v, spec=".2f"):
    return "n/a" if v is None else format(v, spec)


def _spread(pair, spec=".3g"):
    """``min–max`` of a ``[min, max]`` spread (blank for a single measurement)."""
    if not pair:
        return ""
    return f"{format(pair[0], spec)}–{format(pair[1], spec)}"


def _ms(d, key):
    """``1.23 ms`` or, with rounds, ``1.23 [1.20–1.31] ms`` (median [min–max])."""
    sp = d.get(key + "_spread")
    return f"{d[key]:.2f}" + (f" [{sp[0]:.2f}–{sp[1]:.2f}]" if sp and sp[0] != sp[1] else "")


def table(results):
    """Rows (case, median, spread [min, max] or None, target, met, absolute) of the contract;
    met is decided by the median (None: an info row)."""
    from bench_scaling import TARGETS as SCALING_TARGETS

    rows = []
    it, pt, ec = results.get("integrate", {}), results.get("ptycho", {}), results.get("eiger_crop", {})
    sc, mem = results.get("scaling", {}), results.get("memory", {})

    for r in it.get("rows", []):
        target = INTEGRATE_TARGETS["csr"]
        rows.append((f"q-phi {r['detector']} {r['bins']} vs pyFAI csr", r["vs_csr"],
                     r.get("vs_csr_spread"), f">= {target:g}x", r["vs_csr"] >= target,
                     f"ours {_ms(r, 'ours_ms')} ms/frame, csr {_ms(r, 'csr_ms')}, "
                     f"maxrel {r['maxrel']:.1e}"))
        if r["detector"] == "eiger1m":
            rows.append((f"q-phi {r['detector']} {r['bins']} vs pyFAI csc", r["vs_csc"],
                         r.get("vs_csc_spread"), f">= {INTEGRATE_TARGETS['csc']:g}x",
                         r["vs_csc"] >= INTEGRATE_TARGETS["csc"],
                         f"csc {_ms(r, 'csc_ms')} ms/frame"))
    if "integrate_maxrel_vs_pyfai" in it:
        v = it["integrate_maxrel_vs_pyfai"]
        rows.append(("q-phi max relative difference to pyFAI", v, None, "<= 1e-5", v <= 1e-5, ""))
    for name in ("rebin1", "rebin2"):
        c = pt.get("cases", {}).get(name)
        if c:
            rows.append((f"ptycho 2000x512^2 -> 256^2 {name}, gzip vs read", c["ratio"],
                         c.get("ratio_spread"), ">= 0.5", c["ratio"] >= 0.5,
                         f"{c['fps']:.0f} frames/s vs read {pt['read_fps']:.0f} frames/s"))
    for name, c in pt.get("cases", {}).items():
        if name not in ("rebin1", "rebin2"):
            rows.append((f"  (info) ptycho {name} vs read", c["ratio"], None, "", None,
                         f"{c['fps']:.0f} frames/s" + (f", {c['mb']:.0f} MB" if c["mb"] else "")))
    syn = ec.get("synthetic")
    if syn:
        ms = syn["ms_per_frame"]
        rows.append(("bitshuffle-LZ4 1024^2 u32, 256^2 crop-on-read vs h5py whole+crop",
                     syn["ours_vs_whole"], syn.get("ours_vs_whole_spread"), f">= {CROP_TARGET:g}x",
                     syn["ours_vs_whole"] >= CROP_TARGET,
                     f"ours {ms['ours']:.2f} ms, whole {ms['whole']:.2f} ms, "
                     f"hyperslab {ms['hyperslab']:.2f} ms/frame"))
    b2 = ec.get("blosc2")
    if b2:
        ms = b2["ms_per_frame"]
        rows.append(("  (info) Blosc2 1024^2 u32, 256^2 crop-on-read vs h5py whole+crop",
                     b2["ours_vs_whole"], b2.get("ours_vs_whole_spread"), "", None,
                     f"ours {ms['ours']:.2f} ms, whole {ms['whole']:.2f} ms/frame"))
    real = ec.get("real_eiger4m")
    if real:
        rows.append(("  (info) real Eiger 4M file, 256^2 crop vs h5py whole+crop",
                     real["ours_vs_whole"], real.get("ours_vs_whole_spread"), "", None,
                     f"ours {real['ms_per_frame']['ours']:.2f} ms, whole "
                     f"{real['ms_per_frame']['whole']:.2f} ms/frame"))
    for name, c in sc.get("cases", {}).items():
        target = SCALING_TARGETS.get(name)
        label = {"ptycho_append": "ptycho bslz4 raw, append", "ptycho_link": "ptycho bslz4 raw, link",
                 "ptycho_uncompressed": "ptycho uncompressed raw, append"}.get(name, name)
        rows.append((f"2 ranks vs 1, {label}" + ("" if target else " (info)"), c["speedup"],
                     c.get("speedup_spread"), f">= {target:g}x" if target else "",
                     (c["speedup"] >= target) if target else None,
                     f"{c['frames']} frames: {c['fps_1']:.0f} -> {c['fps_2']:.0f} frames/s"))
    if "rss_per_rank_mb_1k" in mem:
        a, b, bound = mem["rss_per_rank_mb_1k"], mem["rss_per_rank_mb_10k"], mem["bound_mb"]
        rows.append(("peak RSS per rank, 10k vs 1k frames (growth)", mem["growth"], None, "<= 10%",
                     mem["growth"] <= 0.10, f"{a:.0f} MB -> {b:.0f} MB"))
        rows.append(("peak RSS per rank, 10k frames (MB)", b, None, f"<= {bound:.0f} MB", b <= bound,
                     f"chunk {mem['chunk_mb']:.0f} MB, imports alone {mem['import_baseline_mb']:.0f} MB"))
    return rows


def summary(results):
    """The ``--json`` figures: every key of KEYS (the median) and its ``_spread`` ([min, max]
    over the rounds; None when the figure is one measurement)."""
    flat = {}
    for data in results.values():
        for key in KEYS:
            if key in data:
                flat[key] = data[key]
                flat[key + "_spread"] = data.get(key + "_spread")
    doc = {}
    for key in KEYS:
        doc[key] = flat.get(key)
        doc[key + "_spread"] = flat.get(key + "_spread")
    return doc


def print_report(results, info, quick, wall):
    print(f"ptyprep benchmarks ({'quick' if quick else 'full'}), {wall:.0f} s")
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info.get('memory_gib', '?')} GiB; "
          f"python {info['python']}, numpy {info['numpy']}, h5py {info['h5py']} "
          f"(HDF5 {info['hdf5']}), pyFAI {info['pyFAI']}, scipy {info['scipy']}, "
          f"hdf5plugin {info['hdf5plugin']}, bitshuffle {info['bitshuffle']}, mpi4py {info['mpi4py']}")
    print(f"threads per process: {info['threads']}; OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']}; "
          f"1-min load average at start {info.get('loadavg_1min')} (other users' work included)")
    n = ROUNDS["quick" if quick else "full"]
    print(f"ratios: median of {n} interleaved rounds (A, B, A, B, ...), spread = min–max of the "
          f"rounds; met/missed by the median. Info rows without a spread: one measurement.")
    rows = table(results)
    w = max(len(r[0]) for r in rows) if rows else 20
    print(f"\n{'case':<{w}}  {'median':>9}  {'spread':>13}  {'target':>11}  {'met':>4}  absolute")
    for name, value, spread, target, met, absolute in rows:
        mark = "" if met is None else ("yes" if met else "NO")
        print(f"{name:<{w}}  {_fmt(value, '.3g'):>9}  {_spread(spread):>13}  {target:>11}  "
              f"{mark:>4}  {absolute}")
    print("\njson keys (median; _spread = [min, max] of the rounds):")
    doc = summary(results)
    for k in KEYS:
        sp = doc[k + "_spread"]
        print(f"  {k} = {_fmt(doc[k], '.4g')}" + (f"  [{_spread(sp, '.4g')}]" if sp else ""))
    for name, data in results.items():
        if "error" in data:
            print(f"\n{name} FAILED: {data['error'][-500:]}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller cases; ~5 minutes here")
    p.add_argument("--json", default=None, help="write the figures (and details) to this file")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(CASES)}")
    p.add_argument("--worker", nargs=3, metavar=("NAME", "KWARGS_JSON", "OUT_JSON"),
                   help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:                     # one case's rounds, in its own single-thread process
        name, kwargs, out = a.worker
        C.emit(WORKERS[name](**json.loads(kwargs)), out)
        return
    names = a.only.split(",") if a.only else list(CASES)
    unknown = set(names) - set(CASES)
    if unknown:
        p.error(f"unknown case(s) {sorted(unknown)}; choose from {', '.join(CASES)}")
    info = C.machine()
    t0 = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="ptyprep-bench-") as tmp:
        for name in names:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results[name] = run_case(name, a.quick, tmp)
    wall = time.perf_counter() - t0
    print_report(results, info, a.quick, wall)
    if a.json:
        doc = summary(results)
        doc.update({"machine": info, "quick": a.quick, "wall_s": wall, "details": results})
        Path(a.json).write_text(json.dumps(doc, indent=1, default=float))
    if any("error" in d for d in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
