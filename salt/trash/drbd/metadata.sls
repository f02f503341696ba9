# DRBD internal metadata on each backing partition that has none; a partition
# holding anything else is refused and left untouched. The partitions come first.
include:
  - trash.storage

trash-drbd-metadata-created:
  trash.drbd_metadata:
    - require:
      - trash: trash-drbd-files-managed
      - trash: trash-storage-partitions-created
