# Every new mirror gets its first UpToDate copy once, from the node the pillar names
# (trash:drbd:initial_sync_source), with GFS2 or its volume group on it; after that
# Pacemaker runs DRBD. corosync runs first: the first volume groups need DLM.
include:
  - trash.drbd.metadata
  - trash.cluster.corosync

trash-drbd-initial-sync:
  trash.drbd_initial_sync:
    - require:
      - trash: trash-drbd-metadata-created
      - service: trash-corosync-running
