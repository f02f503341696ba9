# The lab's pillar (lab/trashlab converge): the example cluster with the lab's facts.
base:
  'node1,node2':
    - match: list
    - trash.cluster
    - trash.secrets
