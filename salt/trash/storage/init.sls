# The partitions of trash:storage on this node's disk, their filesystems and mounts.
# Live actions on this machine's disk: salt/trash/init.sls includes this file only when
# trash_root is /. Each step refuses, changing nothing, what does not match the pillar.
trash-storage-partitions-created:
  trash.storage_layout: []

trash-storage-filesystems-created:
  trash.storage_filesystems:
    - require:
      - trash: trash-storage-partitions-created

trash-storage-mounted:
  trash.storage_mounted:
    - require:
      - trash: trash-storage-filesystems-created
