"""Any pillar, however wrong, gets a PillarError and never a traceback; any pillar the
model accepts renders both nodes."""

import copy
import random

import pytest

from trashlib import files, model

ODD_VALUES = [None, [], {}, "", "x", 0, -1, 70000, True, 1.5, {"a": 1}, ["a"], [["a"]],
              "10.10.1.1/24", "node1", "mirror1", "vbr1", "20G"]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


def _mutate(pillar, rng):
    paths = [p for p in _paths(pillar["trash"]) if p]
    path = rng.choice(paths)
    parent = pillar["trash"]
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and rng.random() < 0.25:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
    return path


@pytest.mark.parametrize("seed", range(8))
def test_mutated_pillars_fail_cleanly_or_render(example_pillar, defaults, seed):
    rng = random.Random(seed)
    for _ in range(250):
        pillar = copy.deepcopy(example_pillar)
        changed = [_mutate(pillar, rng) for _ in range(rng.randint(1, 3))]
        try:
            cfg = model.load(pillar, defaults)
        except model.PillarError as exc:
            assert exc.problems, changed
            assert all(path.startswith("trash") for path, _ in exc.problems), exc.problems
            continue
        for node in cfg["cluster"]["nodes"]:
            assert files.plan(cfg, node), (changed, node)
