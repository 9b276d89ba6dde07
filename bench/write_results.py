"""Collects bench/results/*.txt into bench/RESULTS.md, each block under the command that produced it."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

SECTIONS = (
    ("ingestion.txt", "Ingestion throughput and growth", "python bench/bench_ingestion.py"),
    ("photos.txt", "Camera-size photos: ingestion, stored bytes and memory", "python bench/bench_photos.py"),
    ("photos-40.txt", "Camera-size photos, a larger tree (40 and 160 photos)",
     "python bench/bench_photos.py --photos 40 (its photos.txt, copied)"),
    ("trainer.txt", "Training: seed recipe versus this Trainer", "python bench/bench_trainer.py"),
    ("machine.txt", "Machine limit", "python bench/bench_machine.py"),
    ("serving.txt", "Serving latency and throughput", "python bench/bench_serving.py"),
    ("e2e.txt", "End to end and growth", "python bench/bench_e2e.py"),
    ("e2e-rerun.txt", "End to end, a second run right after (no growth runs)",
     "python bench/bench_e2e.py --scales '' (its e2e.txt, copied)"),
    ("photos_pipeline.txt", "Camera-size photos: whole pipeline versus the seed script",
     "python bench/bench_photos_pipeline.py"),
    ("quality.txt", "Data quality: suspect labels, leaks, the stage's cost", "python bench/bench_quality.py"),
    ("quality-labels.txt", "Data quality, labels part alone (a quieter rerun)",
     "python bench/bench_quality.py --parts labels"),
    ("quality-crops.txt", "Data quality, photo crops part alone", "python bench/bench_quality.py --parts crops"),
)


def main() -> None:
    parts = ["# Benchmark results", "",
             "Written by `make bench` (bench/write_results.py); every figure below was printed by the command "
             "above it, in one run on the machine it names. Ratios compare measurements of the same run.", ""]
    for file_name, title, command in SECTIONS:
        path = common.RESULTS_DIR / file_name
        parts += [f"## {title}", "", f"`{command}`", ""]
        parts += ["```", path.read_text().rstrip(), "```"] if path.exists() else ["(not run yet)"]
        parts.append("")
    (common.BENCH_DIR / "RESULTS.md").write_text("\n".join(parts))
    print(f"wrote {common.BENCH_DIR / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
