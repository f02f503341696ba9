# corosync.conf and its authkey, the Pacemaker CIB (as /etc/trash/cib.xml) and the
# password of the peer's BMC for the fence device; each checked by the real tools.
trash-cluster-files-managed:
  trash.files_managed:
    - concern: cluster
{#- Reloading corosync and pushing the CIB are live actions: not when the files go
    to another root (an image build, a test), unless a CIB file stands in for the
    cluster. #}
{%- set live = salt['config.get']('trash_root', '/') == '/' %}
{%- if live or salt['config.get']('trash_cib_file') %}

include:
{%- if live %}
  - trash.cluster.corosync
{%- endif %}
  - trash.cluster.pacemaker
{%- endif %}
