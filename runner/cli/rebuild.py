"""``tape-runner-report DIR``: rebuild a run's or a sweep's reports from its saved files.

Nothing is recomputed and TensorFlow is never imported: a run's ``report.md``,
``report.html`` and ``snippet.py`` come from its ``results.json`` (and the PNGs
beside it); a sweep's summary from its jobs' records, with any job that left
none listed as missing.

A results folder may have been sent by someone else, so it is read as untrusted
input (:mod:`runner.outputs.records`): nothing outside it is read or written, no symbolic
link inside it is followed, and a job whose record is malformed is named in one
line while the other jobs are rebuilt; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from runner.outputs import records, report, summary
from runner.outputs.files import JOBS, RESULTS


def rebuild_run(run_dir: Path) -> None:
    """Rewrite one run's reports from its record; :class:`records.Rejected` if it cannot be trusted."""
    record = records.read(run_dir)
    try:
        report.write_reports(record, run_dir)
    except OSError as err:
        raise records.Rejected(f"cannot write its reports: {err.strerror or err}") from None


def rebuild_sweep(sweep_dir: Path) -> tuple[summary.Sweep, list[str]]:
    """Rebuild every job that left a results.json, then the summary; also one line per job refused."""
    refused = []
    for job_dir in sorted(child for child in sweep_dir.iterdir() if os.path.lexists(child / RESULTS)):
        try:
            rebuild_run(job_dir)
        except records.Rejected as err:
            refused.append(f"{job_dir.name}: {err}")
    return summary.write(sweep_dir), refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tape-runner-report", description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a run directory or a sweep directory")
    parser.add_argument("--rerun", action="store_true", help="compute again: a run from its snapshot, or "
                        "a sweep's missing and errored jobs (then rebuild its summary)")
    args = parser.parse_args(argv)
    # The folder named is the user's choice, link or not; no link inside it is followed.
    directory: Path = args.directory.resolve()
    if not directory.is_dir():
        print(f"tape-runner-report: {directory} is not a directory", file=sys.stderr)
        return 1
    status = 0
    if args.rerun:
        from runner.cli import rerun

        try:
            status = rerun.rerun(directory)
        except rerun.RerunError as err:
            print(f"tape-runner-report: {err}", file=sys.stderr)
            return 1
        if rerun.is_run(directory):
            return status
    if os.path.lexists(directory / RESULTS):
        try:
            rebuild_run(directory)
        except records.Rejected as err:
            print(f"tape-runner-report: {directory / RESULTS} refused: {err}", file=sys.stderr)
            return 1
        print(f"rebuilt {directory / report.REPORT_HTML} and {report.REPORT_MD}")
        return 0
    if not ((directory / JOBS).is_file() or (directory / "multirun.yaml").is_file()):
        print(f"tape-runner-report: {directory} holds neither {RESULTS} (a run) nor "
              f"{JOBS} or multirun.yaml (a sweep)", file=sys.stderr)
        return 1
    sweep, refused = rebuild_sweep(directory)
    counts = ", ".join(f"{sweep.statuses.count(s)} {s}" for s in dict.fromkeys(sweep.statuses))
    print(f"rebuilt {directory / (summary.SUMMARY + '.html')}: {len(sweep.rows)} jobs ({counts or 'none'})")
    for row in sweep.rows:
        if row["status"] == "missing":
            print(f"  job {row['job']} missing ({row['overrides']}): {row['message']}")
    for line in refused:
        print(f"tape-runner-report: job {line}", file=sys.stderr)
    return 1 if refused else status


if __name__ == "__main__":
    sys.exit(main())
