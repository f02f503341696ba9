# libvirt domain XML of every guest: cluster guests on the shared GFS2 (read by
# Pacemaker's VirtualDomain), /local guests on their home node.
trash-guests-files-managed:
  trash.files_managed:
    - concern: guests
