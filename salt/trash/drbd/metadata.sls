# DRBD internal metadata on each backing partition that has none; a partition
# holding anything else is refused and left untouched.
trash-drbd-metadata-created:
  trash.drbd_metadata:
    - require:
      - trash: trash-drbd-files-managed
