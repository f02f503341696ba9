"""etc/salt/master as deployed: the checkout at /srv/trash."""

DEPLOYED = "/srv/trash"


def paths(tree):
    """Every absolute path a (parsed) Salt configuration names, depth first."""
    if isinstance(tree, dict):
        for value in tree.values():
            yield from paths(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from paths(value)
    elif isinstance(tree, str) and tree.startswith("/"):
        yield tree
