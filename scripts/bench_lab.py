#!/usr/bin/env python3
"""Time and memory of the fabric lab (see BENCHMARKS.md): `strata lab up` then
`strata lab test` on examples/fleet, then `strata lab down`.

Run as root, after `cargo build --release -p strata-cli`:

    scripts/bench_lab.py                 # one DC, 2 racks: 2 spines, 4 leaves, 8 tenant hosts
    scripts/bench_lab.py --dci           # two DCs joined through their border leaves

Reported:
- wall time of `lab up`, of `lab test`, and of both;
- peak RSS of each strata process (from wait4's rusage);
- peak memory of the whole lab while it runs: the sum of PSS (proportional set size,
  shared pages divided among their users) of every process whose command line names
  the lab's directory (FRR daemons, keepalived, the health-check listeners) plus the
  strata process, sampled every 0.2 s;
- how much MemAvailable dropped from before `lab up` to its lowest point (everything,
  kernel objects for namespaces and devices included).
"""

import argparse
import os
import subprocess
import sys
import threading
import time

ROOT = "/run/strata-lab"


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    def __init__(self, lab_dir):
        super().__init__(daemon=True)
        self.marker = lab_dir + "/"
        self.stop = threading.Event()
        self.peak_pss = 0
        self.peak_procs = 0
        self.min_available = mem_available_kib()

    def lab_pids(self):
        pids = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if self.marker in cmd or "lab up" in cmd or "lab test" in cmd:
                pids.append(int(name))
        return pids

    def run(self):
        while not self.stop.is_set():
            pids = self.lab_pids()
            total = sum(pss_kib(p) for p in pids)
            self.peak_pss = max(self.peak_pss, total)
            self.peak_procs = max(self.peak_procs, len(pids))
            self.min_available = min(self.min_available, mem_available_kib())
            time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/strata")
    ap.add_argument("--dci", action="store_true")
    ap.add_argument("--name", default="bench")
    args = ap.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    subprocess.run([args.bin, "lab", "down", "--name", args.name], stdout=subprocess.DEVNULL)

    before = mem_available_kib()
    sampler = Sampler(f"{ROOT}/{args.name}")
    sampler.start()
    up_cmd = [args.bin, "lab", "up", "examples/fleet", "--dc", "ams1", "--name", args.name]
    if args.dci:
        up_cmd.append("--dci")
    results = {}
    for label, cmd in [("up", up_cmd), ("test", [args.bin, "lab", "test", "--name", args.name])]:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # wait4 gives the child's own peak RSS (ru_maxrss, KiB).
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.monotonic() - start
        out = proc.stdout.read().decode(errors="replace")
        code = os.waitstatus_to_exitcode(status)
        results[label] = (code, elapsed, usage.ru_maxrss)
        tail = out.strip().splitlines()[-1] if out.strip() else ""
        print(f"lab {label}: exit {code}, {elapsed:.1f} s, strata peak RSS {usage.ru_maxrss / 1024:.0f} MiB: {tail}")
        if code != 0:
            print(out)
            break
    sampler.stop.set()
    sampler.join()
    subprocess.run([args.bin, "lab", "down", "--name", args.name], stdout=subprocess.DEVNULL)

    total = sum(r[1] for r in results.values())
    print(f"up + test: {total:.1f} s on {os.cpu_count()} CPUs")
    print(
        f"lab peak memory: {sampler.peak_pss / 1024:.0f} MiB PSS over at most "
        f"{sampler.peak_procs} processes; MemAvailable dropped by at most "
        f"{(before - sampler.min_available) / 1024:.0f} MiB"
    )
    return 0 if all(r[0] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
