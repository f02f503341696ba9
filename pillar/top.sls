# Every cluster node gets the whole cluster description: each node renders its own
# part from it, and each must know its peer.
base:
  'node1,node2':
    - match: list
    - trash.cluster
    - trash.secrets
