#!/usr/bin/env python3
"""Benchmark `strata validate` against PyYAML's C loader on the same files.

Generates two synthetic fleets with `strata init`:
  small: 1 DC  x 50 racks x 40 machines, 20,000 VMs   (2,000 machines,  20,000 VMs)
  large: 10 DCs x 50 racks x 40 machines, 20,000 VMs/DC (20,000 machines, 200,000 VMs)
and, in the same run, measures for each:
  - strata validate: wall time (median of N runs) and peak RSS (from wait4's ru_maxrss);
  - PyYAML: time for yaml.load(f, Loader=yaml.CSafeLoader) over every spec file, in a
    fresh interpreter per run (parsing only: no validation at all).
Prints a Markdown table and writes the raw figures as JSON.

Usage: scripts/bench_validate.py [--strata PATH] [--runs N] [--workdir DIR] [--json OUT]
"""
import argparse
import json
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

PYYAML_SNIPPET = r"""
import sys, time, pathlib, yaml
files = sorted(p for p in pathlib.Path(sys.argv[1]).rglob("*.yaml"))
t = time.perf_counter()
for p in files:
    with open(p, "rb") as f:
        yaml.load(f, Loader=yaml.CSafeLoader)
print(time.perf_counter() - t)
"""


def run_measured(cmd):
    """Run cmd; return (wall seconds, peak RSS KiB, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} exited {code}\n{err[-2000:]}")
    return wall, usage.ru_maxrss, code


def pyyaml_parse(dirpath, python):
    out = subprocess.run([python, "-c", PYYAML_SNIPPET, str(dirpath)], check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip())


def size_of(d):
    return sum(p.stat().st_size for p in pathlib.Path(d).rglob("*.yaml"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strata", default=str(ROOT / "target/release/strata"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/strata-bench")
    ap.add_argument("--json", default=None)
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()

    import yaml  # noqa: F401  (fail early if PyYAML is missing)
    if not getattr(yaml, "__with_libyaml__", False):
        raise SystemExit("PyYAML was built without libyaml: CSafeLoader unavailable")

    work = pathlib.Path(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fleets = {
        "small (1 DC)": (work / "small", ["--dcs", "1"]),
        "large (10 DCs)": (work / "large", ["--dcs", "10"]),
    }
    common = ["--racks-per-dc", "50", "--machines-per-rack", "40", "--vms-per-dc", "20000"]
    results = {}
    for name, (d, extra) in fleets.items():
        subprocess.run([a.strata, "init", str(d), *extra, *common], check=True,
                       stdout=subprocess.DEVNULL)
        # Warm the page cache once for both tools.
        pyyaml_parse(d, a.python)
        walls, rsss, pys = [], [], []
        for _ in range(a.runs):
            w, rss, _ = run_measured([a.strata, "validate", str(d)])
            walls.append(w)
            rsss.append(rss)
            pys.append(pyyaml_parse(d, a.python))
        results[name] = {
            "bytes": size_of(d),
            "strata_validate_s": statistics.median(walls),
            "strata_peak_rss_mib": max(rsss) / 1024,
            "pyyaml_parse_s": statistics.median(pys),
            "runs": a.runs,
        }
    small = results["small (1 DC)"]
    large = results["large (10 DCs)"]
    scaling = large["strata_validate_s"] / small["strata_validate_s"]
    print(f"cpu: {os.cpu_count()} cores; strata: {a.strata}; python: {sys.version.split()[0]}, PyYAML {yaml.__version__}")
    print()
    print("| fleet | YAML | strata validate | PyYAML CSafeLoader parse only | ratio strata/PyYAML | strata peak RSS |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['bytes'] / 2**20:.1f} MiB | {r['strata_validate_s']:.2f} s | "
              f"{r['pyyaml_parse_s']:.2f} s | {r['strata_validate_s'] / r['pyyaml_parse_s']:.3f}x | "
              f"{r['strata_peak_rss_mib']:.0f} MiB |")
    print()
    print(f"scaling: 10x the input costs {scaling:.2f}x the time (target <= 11x)")
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps({"results": results, "scaling": scaling}, indent=2) + "\n")


if __name__ == "__main__":
    main()
