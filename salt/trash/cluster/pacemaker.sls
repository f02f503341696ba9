# Pacemaker runs once corosync does and every new mirror has its first copy (the initial
# sync made the volume groups, their guests' volumes, GFS2 and the guests' XML on it). Then the rendered CIB
# is pushed; test=True shows the transition that crm_simulate predicts for it. The first
# push waits for Pacemaker on every node: it brings the fence devices.
{%- set live = salt['config.get']('trash_root', '/') == '/' %}
{%- if live %}
include:
  - trash.boot
  - trash.packages
  - trash.cluster.corosync
  - trash.drbd.initial_sync
  - trash.guests

# DLM may bind the serial link's address before pppd has it (trashlib.corosync.dlm_sysctl):
# the file is the cluster concern's; this sets the running value.
trash-dlm-may-bind-absent-addresses:
  sysctl.present:
    - name: net.ipv4.ip_nonlocal_bind
    - value: 1
    - config: /etc/sysctl.d/60-trash-dlm.conf
    - require:
      - trash: trash-cluster-files-managed
    - require_in:
      - service: trash-pacemaker-running
      - trash: trash-drbd-initial-sync

trash-pacemaker-running:
  service.running:
    - name: pacemaker
    - require:
      - service: trash-corosync-running
      - trash: trash-drbd-initial-sync

trash-pacemaker-at-boot:
  trash.units_at_boot:
    - enable: [pacemaker]
    - require:
      - service: trash-pacemaker-running
    - onchanges_in:
      - cmd: trash-systemd-reloaded

# Pacemaker runs DLM, lvmlockd and the mirrors (the resource graph). Debian enables
# dlm.service, lvmlockd.service and lvmlocks.service with their packages (drbd.service
# when an administrator does): at boot they would start these outside Pacemaker, and at
# shutdown systemd would stop them beside it, without its order. Disabled, not stopped:
# stopping drbd.service takes every mirror down, lvmlocks.service every lockspace.
trash-pacemaker-owns-lock-and-mirror-daemons:
  trash.units_at_boot:
    - disable: [drbd, dlm, lvmlockd, lvmlocks]
    - require:
      - pkg: trash-packages-installed
    - onchanges_in:
      - cmd: trash-systemd-reloaded
{%- endif %}

trash-pacemaker-configured:
  trash.pacemaker_configured:
    - require:
      - trash: trash-cluster-files-managed
{%- if live %}
      - service: trash-pacemaker-running
      # VirtualDomain needs libvirtd and the domain XML of each guest it starts
      - service: trash-libvirtd-running
      - trash: trash-guests-files-managed
      # the resource agents' dependencies loaded (trashlib.agents)
      - cmd: trash-systemd-reloaded
{%- endif %}
