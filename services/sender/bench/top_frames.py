"""Summarize py-spy collapsed stacks (``--profile x.txt``): top self and inclusive frames.

uv run python services/sender/bench/top_frames.py /tmp/prof.txt [N]
"""

from __future__ import annotations

import sys
from collections import Counter


def main() -> None:
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            c = int(count)
            total += c
            frames = stack.split(";")
            own[frames[-1]] += c
            for frame in set(frames):
                incl[frame] += c
    print(f"total samples {total}")
    print("--- self")
    for frame, c in own.most_common(n):
        print(f"{100 * c / total:5.1f}%  {frame}")
    print("--- inclusive")
    for frame, c in incl.most_common(n * 2):
        print(f"{100 * c / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
