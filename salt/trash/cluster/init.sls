# corosync.conf and its authkey, the Pacemaker CIB (as /etc/trash/cib.xml), the
# password of the peer's BMC for the fence device, each checked by the real tools, and
# the resource agent files (trashlib.agents).
{%- set live = salt['config.get']('trash_root', '/') == '/' %}
trash-cluster-files-managed:
  trash.files_managed:
    - concern: cluster
{%- if live %}
    # systemd reads the agents' drop-in before Pacemaker starts a guest
    - onchanges_in:
      - cmd: trash-systemd-reloaded
{%- endif %}
{#- Reloading corosync and pushing the CIB are live actions: not when the files go
    to another root (an image build, a test), unless a CIB file stands in for the
    cluster. #}
{%- if live or salt['config.get']('trash_cib_file') %}

include:
{%- if live %}
  - trash.boot
  - trash.cluster.corosync
{%- endif %}
  - trash.cluster.pacemaker
{%- endif %}
