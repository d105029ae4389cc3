"""Run every benchmark in bench/ (bench_*.py, ingest.py, xmatch.py).

Each prints ratios against baselines measured in the same run.
"""
import glob
import os
import runpy
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
scripts = sorted(glob.glob(os.path.join(here, "bench_*.py")))
scripts += [os.path.join(here, n) for n in ("ingest.py", "xmatch.py")]
for path in scripts:
    print(f"=== {os.path.basename(path)}")
    runpy.run_path(path, run_name="__main__")
