# The partitions of trash:storage on this node's disk, their filesystems and mounts.
# Live actions on this machine's disk: salt/trash/init.sls includes this file only when
# trash_root is /. Each step refuses, changing nothing, what does not match the pillar.
include:
  - trash.packages

# The software RAID array the partitions go on (trash:nodes:<node>:raid), if any.
trash-storage-raid:
  trash.storage_raid:
    - require:
      - pkg: trash-packages-installed

trash-storage-partitions-created:
  trash.storage_layout:
    - require:
      - trash: trash-storage-raid

trash-storage-filesystems-created:
  trash.storage_filesystems:
    - require:
      - trash: trash-storage-partitions-created

trash-storage-mounted:
  trash.storage_mounted:
    - require:
      - trash: trash-storage-filesystems-created
