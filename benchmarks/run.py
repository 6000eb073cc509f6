"""Run every benchmark and print the table of ratios measured in this run.

    python benchmarks/run.py [--quick] [--json FILE] [--only integrate,ptycho,...]

Every case runs in its own process with one thread per process (OMP/OpenBLAS/MKL = 1);
the data are generated in a temporary folder. The ratios are the contract (see
benchmarks/README.md); absolute numbers are printed for reference.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: I001  (pins threads before numpy)

KEYS = ("integrate_vs_pyfai_csr", "integrate_vs_pyfai_best", "integrate_maxrel_vs_pyfai",
        "ptycho_vs_read_limit", "eiger_crop_read_vs_h5py", "scaling_2_ranks",
        "rss_per_rank_mb_1k", "rss_per_rank_mb_10k")

#: (script, arguments in --quick mode, arguments otherwise)
CASES = {
    "integrate": ("bench_integrate.py", ["--frames", "16", "--repeat", "3"],
                  ["--frames", "32", "--repeat", "3"]),
    "ptycho": ("bench_ptycho.py", ["--frames", "2000", "--repeat", "1", "--no-extra"],
               ["--frames", "2000", "--repeat", "2"]),
    "eiger_crop": ("bench_eiger_crop.py", ["--frames", "300", "--repeat", "2"],
                   ["--frames", "1000", "--repeat", "3"]),
    "scaling": ("bench_scaling.py", ["--frames", "256", "--int-frames", "64"],
                ["--frames", "512", "--int-frames", "128"]),
    "memory": ("bench_memory.py", [], []),
}


def run_case(name, quick, tmp):
    script, quick_args, full_args = CASES[name]
    out = Path(tmp) / f"{name}.json"
    cmd = [sys.executable, str(C.HERE / script), *(quick_args if quick else full_args),
           "--json-out", str(out)]
    if name != "integrate":
        cmd += ["--tmp", str(tmp)]
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


def table(results):
    """Rows (case, measured, target, met, absolute numbers) of the contract."""
    rows = []
    it, pt, ec = results.get("integrate", {}), results.get("ptycho", {}), results.get("eiger_crop", {})
    sc, mem = results.get("scaling", {}), results.get("memory", {})

    for r in it.get("rows", []):
        target = 8.0 if r["detector"] == "eiger1m" else 5.0
        rows.append((f"q-phi {r['detector']} {r['bins']} vs pyFAI csr", r["vs_csr"], f">= {target:g}x",
                     r["vs_csr"] >= target,
                     f"ours {r['ours_ms']:.2f} ms/frame, csr {r['csr_ms']:.2f}, maxrel {r['maxrel']:.1e}"))
        if r["detector"] == "eiger1m":
            rows.append((f"q-phi {r['detector']} {r['bins']} vs pyFAI csc", r["vs_csc"], ">= 5x",
                         r["vs_csc"] >= 5.0, f"csc {r['csc_ms']:.2f} ms/frame"))
    if "integrate_maxrel_vs_pyfai" in it:
        v = it["integrate_maxrel_vs_pyfai"]
        rows.append(("q-phi max relative difference to pyFAI", v, "<= 1e-5", v <= 1e-5, ""))
    for name in ("rebin1", "rebin2"):
        c = pt.get("cases", {}).get(name)
        if c:
            rows.append((f"ptycho 2000x512^2 -> 256^2 {name}, gzip vs read", c["ratio"], ">= 0.5",
                         c["ratio"] >= 0.5,
                         f"{c['fps']:.0f} frames/s vs read {pt['read_fps']:.0f} frames/s"))
    for name, c in pt.get("cases", {}).items():
        if name not in ("rebin1", "rebin2"):
            rows.append((f"  (info) ptycho {name} vs read", c["ratio"], "", None,
                         f"{c['fps']:.0f} frames/s" + (f", {c['mb']:.0f} MB" if c["mb"] else "")))
    syn = ec.get("synthetic")
    if syn:
        ms = syn["ms_per_frame"]
        rows.append(("bitshuffle-LZ4 1024^2 u32, 256^2 crop-on-read vs h5py whole+crop",
                     syn["ours_vs_whole"], ">= 3x", syn["ours_vs_whole"] >= 3.0,
                     f"ours {ms['ours']:.2f} ms, whole {ms['whole']:.2f} ms, "
                     f"hyperslab {ms['hyperslab']:.2f} ms/frame"))
    b2 = ec.get("blosc2")
    if b2:
        ms = b2["ms_per_frame"]
        rows.append(("  (info) Blosc2 1024^2 u32, 256^2 crop-on-read vs h5py whole+crop",
                     b2["ours_vs_whole"], "", None,
                     f"ours {ms['ours']:.2f} ms, whole {ms['whole']:.2f} ms/frame"))
    real = ec.get("real_eiger4m")
    if real:
        rows.append(("  (info) real Eiger 4M file, 256^2 crop vs h5py whole+crop",
                     real["ours_vs_whole"], "", None,
                     f"ours {real['ms_per_frame']['ours']:.2f} ms, whole "
                     f"{real['ms_per_frame']['whole']:.2f} ms/frame"))
    for name, c in sc.get("cases", {}).items():
        counted = name in ("integrate", "bslz4")
        rows.append((f"2 ranks vs 1, {name}" + ("" if counted else " (info)"), c["speedup"],
                     ">= 1.7x" if counted else "", (c["speedup"] >= 1.7) if counted else None,
                     f"{c['fps_1']:.0f} -> {c['fps_2']:.0f} frames/s"))
    if "rss_per_rank_mb_1k" in mem:
        a, b, bound = mem["rss_per_rank_mb_1k"], mem["rss_per_rank_mb_10k"], mem["bound_mb"]
        rows.append(("peak RSS per rank, 10k vs 1k frames (growth)", mem["growth"], "<= 10%",
                     mem["growth"] <= 0.10, f"{a:.0f} MB -> {b:.0f} MB"))
        rows.append(("peak RSS per rank, 10k frames (MB)", b, f"<= {bound:.0f} MB", b <= bound,
                     f"chunk {mem['chunk_mb']:.0f} MB, imports alone {mem['import_baseline_mb']:.0f} MB"))
    return rows


def summary(results):
    flat = {}
    for data in results.values():
        for key in KEYS:
            if key in data:
                flat[key] = data[key]
    return {key: flat.get(key) for key in KEYS}


def print_report(results, info, quick, wall):
    print(f"ptyprep benchmarks ({'quick' if quick else 'full'}), {wall:.0f} s")
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info.get('memory_gib', '?')} GiB; "
          f"python {info['python']}, numpy {info['numpy']}, h5py {info['h5py']} "
          f"(HDF5 {info['hdf5']}), pyFAI {info['pyFAI']}, scipy {info['scipy']}, "
          f"hdf5plugin {info['hdf5plugin']}, bitshuffle {info['bitshuffle']}, mpi4py {info['mpi4py']}")
    print(f"threads per process: {info['threads']}; OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']}; "
          f"1-min load average at start {info.get('loadavg_1min')} (other users' work included)")
    rows = table(results)
    w = max(len(r[0]) for r in rows) if rows else 20
    print(f"\n{'case':<{w}}  {'measured':>9}  {'target':>11}  {'met':>4}  absolute")
    for name, value, target, met, absolute in rows:
        mark = "" if met is None else ("yes" if met else "NO")
        print(f"{name:<{w}}  {_fmt(value, '.3g'):>9}  {target:>11}  {mark:>4}  {absolute}")
    print("\njson keys:")
    for k, v in summary(results).items():
        print(f"  {k} = {_fmt(v, '.4g')}")
    for name, data in results.items():
        if "error" in data:
            print(f"\n{name} FAILED: {data['error'][-500:]}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller cases; under 3 minutes")
    p.add_argument("--json", default=None, help="write the figures (and details) to this file")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(CASES)}")
    a = p.parse_args()
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
