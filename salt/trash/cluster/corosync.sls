# The running corosync takes a changed corosync.conf without a restart where it can;
# what needs a restart is named.
trash-corosync-reloaded:
  trash.corosync_reloaded:
    - require:
      - trash: trash-cluster-files-managed
