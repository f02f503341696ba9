# systemd-networkd files of the zones, bonds, the Internet bridge, the LAN trunk with one
# VLAN and bridge per trash:network:vlans id, and the cross-link addresses. test=True names
# the links a change would touch (networkctl reload / reconfigure).
trash-network-files-managed:
  trash.files_managed:
    - concern: network
{#- Starting and reloading services is a live action: not when the files go to another
    root (an image build, a test). #}
{%- if salt['config.get']('trash_root', '/') == '/' %}

include:
  - trash.network.service
{%- endif %}
