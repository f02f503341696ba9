# corosync.conf and its authkey, the Pacemaker CIB (as /etc/trash/cib.xml) and the
# password of the peer's BMC for the fence device; each checked by the real tools.
trash-cluster-files-managed:
  trash.files_managed:
    - concern: cluster
