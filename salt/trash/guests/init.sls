# libvirt domain XML of every guest: cluster guests on the shared GFS2 (read by
# Pacemaker's VirtualDomain), /local guests on their home node.
trash-guests-files-managed:
  trash.files_managed:
    - concern: guests
{#- Disks, libvirtd and domains live on this machine: not when files go to another root. #}
{%- if salt['config.get']('trash_root', '/') == '/' %}

include:
  - trash.boot
  - trash.storage

# Each guest's disk, created when missing, never shrunk or removed: a cluster guest's
# logical volume where its volume group is active, a /local guest's image once /local is
# mounted.
trash-guest-disks-created:
  trash.guest_disks:
    - require:
      - trash: trash-storage-mounted

# libvirtd runs on both nodes: Pacemaker's VirtualDomain starts cluster guests through
# it, and it autostarts the /local guests it has defined.
trash-libvirtd-running:
  service.running:
    - name: libvirtd

trash-libvirtd-at-boot:
  trash.units_at_boot:
    - enable: [libvirtd]
    - require:
      - service: trash-libvirtd-running
    - onchanges_in:
      - cmd: trash-systemd-reloaded

# /local guests defined (and updated) from their XML, autostarted by libvirt, started now
trash-guests-defined:
  trash.guests_defined:
    - require:
      - service: trash-libvirtd-running
      - trash: trash-guests-files-managed
      - trash: trash-guest-disks-created
{%- endif %}
