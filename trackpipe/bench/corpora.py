"""The benchmark's input: generated days of tracking logs, cached in `.bench/` (ignored by git)
so every benchmark run reads the same bytes and only the first one pays for generating them."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".bench"
SEED = 42


def corpus(events: int, files: int = 8) -> Path:
    """The cached corpus of `events` events (generated on first use)."""
    from trackpipe.generator.generate import generate

    folder = CACHE / f"corpus-{events}-seed{SEED}-f{files}"
    if not (folder / "expected.json").exists():
        print(f"bench: generating {events:,} events into {folder} (once)", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        generate(str(folder), events, SEED, days=1, files=files)
    return folder
