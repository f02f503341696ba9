"""Write the sfdisk captures of this folder from real sfdisk runs on image files.

Run as root from the repository root: ``.venv/bin/python tests/data/storage/capture.py``.
Each ``<name>.json`` is ``sfdisk --json`` of a 128 MiB image named ``sda``:

- ``gpt-full``, ``dos-full``: layout-small.yaml as trash_storage.layout writes it
- ``gpt-installed``: only 1, 2 and 4, as a hand installation leaves the disk
- ``dos-installed``: 1, 2, 4 and the extended 3 holding 5
- ``foreign``: one GPT partition over the whole disk
"""

import dataclasses
import os
import pathlib
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "_utils"))

from trashlib import model, storage  # noqa: E402

SIZE = 128 << 20


def layout(label):
    defaults = yaml.safe_load((ROOT / "salt/trash/defaults.yaml").read_text())
    pillar = {}
    for name in ("cluster", "secrets"):
        pillar = model.merge(pillar, yaml.safe_load((ROOT / f"pillar/trash/{name}.sls").read_text()))
    pillar["trash"]["storage"] = {"label": label,
                                  "partitions": yaml.safe_load((HERE / "layout-small.yaml").read_text())}
    # sfdisk runs on the image file "sda" in the working directory
    return dataclasses.replace(storage.wanted(model.load(pillar, defaults), "node1"), disk="sda")


def capture(name, script, workdir):
    image = workdir / "sda"
    image.unlink(missing_ok=True)
    with open(image, "wb") as handle:
        handle.truncate(SIZE)
    subprocess.run(["sfdisk", "-q", "--wipe", "never", "--wipe-partitions", "never", "sda"],
                   input=script, text=True, check=True, cwd=workdir)
    out = subprocess.run(["sfdisk", "--json", "sda"], capture_output=True, text=True, check=True,
                         cwd=workdir).stdout
    (HERE / f"{name}.json").write_text(out)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        for label, name in (("gpt", "gpt"), ("msdos", "dos")):
            want = layout(label)
            plan = storage.plan(want, storage.Disk("sda", SIZE, 512))
            capture(f"{name}-full", storage.script(want, plan), workdir)
            keep = (1, 2, 4) if label == "gpt" else (1, 2, 4, 3, 5)
            partial = storage.Plan(tuple(p for p in plan.create if p.number in keep), (), (), True)
            capture(f"{name}-installed", storage.script(want, partial), workdir)
        capture("foreign", "label: gpt\nstart=2048, type=L\n", workdir)


if __name__ == "__main__":
    os.umask(0o022)
    main()
