"""The benchmark's input: generated days of tracking logs, cached in `.bench/` (ignored by git)
so every benchmark run reads the same bytes and only the first one pays for generating them."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".bench"
SEED = 42


# A production-shaped day (`trackpipe generate --shape production`): the biggest file holds about
# half the lines and is plain text, two more gzip files hold a third, 13 small gzip files the rest.
FILES = 16
SHAPE = "production"


def corpus(events: int, files: int = FILES, shape: str = SHAPE) -> Path:
    """The cached corpus of `events` events (generated on first use)."""
    from trackpipe.generator.generate import generate

    folder = CACHE / f"corpus-{events}-seed{SEED}-f{files}-{shape}"
    if not (folder / "expected.json").exists():
        print(f"bench: generating {events:,} events into {folder} (once)", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        generate(str(folder), events, SEED, days=1, files=files, shape=shape)
    return folder
