# Pacemaker runs once corosync does and every new mirror has its first copy (the initial
# sync made the volume groups, their guests' volumes, GFS2 and the guests' XML on it). Then the rendered CIB
# is pushed; test=True shows the transition that crm_simulate predicts for it. The first
# push waits for Pacemaker on every node: it brings the fence devices.
{%- set live = salt['config.get']('trash_root', '/') == '/' %}
{%- if live %}
include:
  - trash.cluster.corosync
  - trash.drbd.initial_sync
  - trash.guests

trash-pacemaker-running:
  service.running:
    - name: pacemaker
    - enable: True
    - require:
      - service: trash-corosync-running
      - trash: trash-drbd-initial-sync
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
{%- endif %}
