"""Directory entries that survive a power cut: a fenced node is powered off, not shut
down, so a new file, a rename or a new directory must be on disk before a state reports
it done."""

import os


def fsync_dir(path):
    """Make a rename or a new entry in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs(path, mode=0o755):
    """os.makedirs, each new directory's entry made durable in its parent."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        os.makedirs(directory, mode, exist_ok=True)
        fsync_dir(os.path.dirname(directory))
