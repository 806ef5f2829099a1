"""Memory of a long batch: does `slmscan scan ... --out OUT` grow as it goes?

A folder of 200 documents: the 24 corpus pages and hand-made text variations (as in the batch
tests), and a probe, the corpus page whose extraction takes the most memory, made first and,
under another name, last. The
batch runs in a child process; every 50 ms the resident memory (VmRSS) and its high-water mark
(VmHWM) of the batch process and of its worker are read from /proc. Peak memory at the start is
the high-water mark once the first document is done (the model loaded and used once); at the
end, the high-water mark when the run finishes. Both were reached on the same document, so the
difference is what the run accumulated. Prints Markdown:

    python benchmarks/batch_memory.py --run fake:200 --run smollm2-135m:12 \\
        > benchmarks/results/batch_memory.md

A run is MODEL:N: the first N-1 documents of the order, then the probe again (a real model is
too slow for 200 documents here). Linux only (/proc). Wrap runs of a real model in
`flock /tmp/slmscan-cpu.lock` on shared machines.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the batch tests' hand-made documents

from field_reports import variation  # noqa: E402

GROWTH_LIMIT_MB = 50


def build_folder(folder: Path, corpus: Path, total: int = 200) -> list[Path]:
    """The documents in the order they are made: probe, pages spread among texts, probe."""
    folder.mkdir(parents=True)
    pages = sorted((corpus / "html").glob("*.html"))
    for page in pages:
        shutil.copy(page, folder / page.name)
    probe = max(pages, key=extraction_peak_kb)
    first, last = folder / f"000-probe-{probe.name}", folder / f"zzz-probe-{probe.name}"
    shutil.copy(probe, first)
    shutil.copy(probe, last)
    texts: list[Path] = []
    rng = random.Random(6)
    for i in range(total - len(pages) - 2):
        name, text = variation(rng, i)
        texts.append(folder / name)
        texts[-1].write_text(text)
    middle: list[Path] = []
    step = len(texts) // len(pages)
    for j, page in enumerate(pages):
        middle += [folder / page.name, *texts[j * step : (j + 1) * step]]
    middle += texts[len(pages) * step :]
    return [first, *middle, last]


def extraction_peak_kb(page: Path) -> int:
    """Peak RSS of a fresh process that extracts the page (and makes its fake card)."""
    code = (
        "import resource, sys\n"
        "from slmscan.extract import extract_article\n"
        "from slmscan.fake import FakeAnalyser\n"
        "from slmscan.sources import read_source\n"
        "FakeAnalyser().analyse(extract_article(read_source(sys.argv[1], offline=True)))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(page)], capture_output=True, text=True)
    return int(done.stdout) if done.returncode == 0 else 0


def memory_mb(pid: int) -> tuple[float, float] | None:
    """Resident memory of a process and its high-water mark, from /proc (None once gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M))
    if len(found) < 2:
        return None
    return int(found["VmRSS"]) / 1024, int(found["VmHWM"]) / 1024


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@dataclass
class Sample:
    finished: int
    parent: tuple[float, float]  # (RSS, high-water mark) in MB
    worker: tuple[float, float]


@dataclass
class Result:
    model: str
    documents: int
    seconds: float = 0.0
    returncode: int = 0
    summary: str = ""
    samples: list[Sample] = field(default_factory=list)

    def start(self) -> Sample | None:
        """The first sample once the first document was done (a worker running)."""
        return next((s for s in self.samples if s.finished >= 1 and s.worker[1]), None)

    def end(self) -> Sample | None:
        """The last sample with a worker running."""
        return next((s for s in reversed(self.samples) if s.worker[1]), None)


def run(model: str, documents: list[Path], out: Path) -> Result:
    """One batch over `documents`, sampled."""
    result = Result(model=model, documents=len(documents))
    cli = [sys.executable, "-c", "from slmscan.cli import main; main()"]
    args = [*cli, "scan", "--offline", "--model", model, *map(str, documents), "--out", str(out)]
    started = time.monotonic()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    finished = 0
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            parent = memory_mb(process.pid)
            workers = [m for c in children(process.pid) if (m := memory_mb(c))]
            if parent is not None:
                worker = max(workers, default=(0.0, 0.0))
                result.samples.append(Sample(finished, parent, worker))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert process.stderr is not None
    for line in process.stderr:
        match = re.match(r"\[(\d+)/\d+ ", line)
        if match:
            finished = int(match.group(1))
        elif "document(s):" in line:
            result.summary = line.strip()
    result.returncode = process.wait()
    stop.set()
    sampler.join()
    result.seconds = time.monotonic() - started
    return result


def table(results: list[Result]) -> str:
    """The Markdown report."""
    lines = [
        "# Batch memory: peak RSS at the start and at the end of a run",
        "",
        f"`python benchmarks/batch_memory.py` on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}. Peak = the process's high-water mark (VmHWM): "
        "at the start, once the first document (the probe) is done; at the end, when the last "
        "(the probe again) is. Growth must stay under "
        f"{GROWTH_LIMIT_MB} MB. The worker holds the model and extracts; the batch process "
        "reads documents, keeps the journal and writes the cards. RSS in brackets.",
        "",
        "| model | documents | seconds | batch process: start → end (MB) "
        "| worker: start → end (MB) | growth (MB) | ok |",
        "|:--|--:|--:|--:|--:|--:|:--|",
    ]
    for r in results:
        first, last = r.start(), r.end()
        if first is None or last is None:
            lines.append(f"| {r.model} | {r.documents} | {r.seconds:.0f} | no samples | | | NO |")
            continue
        growth = max(last.parent[1] - first.parent[1], last.worker[1] - first.worker[1])
        ok = "yes" if growth <= GROWTH_LIMIT_MB and r.returncode == 0 else "NO"

        def span(a: tuple[float, float], b: tuple[float, float]) -> str:
            return f"{a[1]:.0f} ({a[0]:.0f}) → {b[1]:.0f} ({b[0]:.0f})"

        lines.append(
            f"| {r.model} | {r.documents} | {r.seconds:.0f} | {span(first.parent, last.parent)} "
            f"| {span(first.worker, last.worker)} | {growth:+.0f} | {ok} |"
        )
    lines += ["", "Each run's own summary line:", ""]
    lines += [f"* {r.model}: `{r.summary}` (exit {r.returncode})" for r in results]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Build the folder, run each MODEL:DOCUMENTS, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], metavar="MODEL:DOCUMENTS")
    options = parser.parse_args()
    corpus = Path(os.environ.get("SLMSCAN_CORPUS") or ROOT.parent / "shared" / "corpus")
    if not (corpus / "html").is_dir():
        print(f"no corpus at {corpus} (set SLMSCAN_CORPUS)", file=sys.stderr)
        return 1
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "docs"
        documents = build_folder(folder, corpus)
        for i, spec in enumerate(options.run or ["fake:200"]):
            model, _, count = spec.partition(":")
            n = min(int(count or len(documents)), len(documents))
            chosen = [*documents[: n - 1], documents[-1]]  # always ending on the probe
            print(f"{model}: {len(chosen)} documents…", file=sys.stderr)
            results.append(run(model, chosen, Path(scratch) / f"out{i}"))
    print(table(results), end="")
    return 0 if all(r.returncode == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
