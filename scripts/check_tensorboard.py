#!/usr/bin/env python3
"""Reads a splitreason TensorBoard event file with TensorBoard's own loader and prints every
scalar, to check the writer (common/tensorboard.c) against the peer.

Usage: ~/refenv/bin/python scripts/check_tensorboard.py EVENTS_FILE_OR_DIR
(tensorboard==2.20.0, see scripts/requirements-ref.txt)
"""
import glob
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    path = sys.argv[1]
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "events.out.tfevents.*")))
        if not files:
            sys.exit(f"{path}: no event files")
        path = os.path.dirname(files[0])
    acc = EventAccumulator(path)
    acc.Reload()
    tags = acc.Tags()["scalars"]
    if not tags:
        sys.exit(f"{path}: no scalars")
    for tag in tags:
        for ev in acc.Scalars(tag):
            print(f"{tag} step={ev.step} value={ev.value:.8g}")


if __name__ == "__main__":
    main()
