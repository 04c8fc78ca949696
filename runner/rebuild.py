"""``tape-runner-report DIR``: rebuild a run's or a sweep's reports from its saved files.

Nothing is recomputed and TensorFlow is never imported: a run's ``report.md``,
``report.html`` and ``snippet.py`` come from its ``results.json`` (and the PNGs
beside it); a sweep's summary from its jobs' records, with any job that left
none listed as missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runner import report, summary
from runner.outputs import JOBS, RESULTS, read_results


def rebuild_run(run_dir: Path) -> None:
    report.write_reports(read_results(run_dir), run_dir)


def rebuild_sweep(sweep_dir: Path) -> summary.Sweep:
    for results in sorted(sweep_dir.glob(f"*/{RESULTS}")):
        try:
            rebuild_run(results.parent)
        except (OSError, json.JSONDecodeError):
            continue  # the summary lists this job as missing, with the reason
    return summary.write(sweep_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tape-runner-report", description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a run directory or a sweep directory")
    parser.add_argument("--rerun", action="store_true", help="compute again: a run from its snapshot, or "
                        "a sweep's missing and errored jobs (then rebuild its summary)")
    args = parser.parse_args(argv)
    directory: Path = args.directory
    if not directory.is_dir():
        print(f"tape-runner-report: {directory} is not a directory", file=sys.stderr)
        return 1
    status = 0
    if args.rerun:
        from runner import rerun

        try:
            status = rerun.rerun(directory)
        except rerun.RerunError as err:
            print(f"tape-runner-report: {err}", file=sys.stderr)
            return 1
        if rerun.is_run(directory):
            return status
    if (directory / RESULTS).is_file():
        try:
            rebuild_run(directory)
        except (OSError, json.JSONDecodeError) as err:
            print(f"tape-runner-report: cannot read {directory / RESULTS}: {err}", file=sys.stderr)
            return 1
        print(f"rebuilt {directory / report.REPORT_HTML} and {report.REPORT_MD}")
        return 0
    if not ((directory / JOBS).is_file() or (directory / "multirun.yaml").is_file()):
        print(f"tape-runner-report: {directory} holds neither {RESULTS} (a run) nor "
              f"{JOBS} or multirun.yaml (a sweep)", file=sys.stderr)
        return 1
    sweep = rebuild_sweep(directory)
    counts = ", ".join(f"{sweep.statuses.count(s)} {s}" for s in dict.fromkeys(sweep.statuses))
    print(f"rebuilt {directory / (summary.SUMMARY + '.html')}: {len(sweep.rows)} jobs ({counts or 'none'})")
    for row in sweep.rows:
        if row["status"] == "missing":
            print(f"  job {row['job']} missing ({row['overrides']}): {row['message']}")
    return status


if __name__ == "__main__":
    sys.exit(main())
