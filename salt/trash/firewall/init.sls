# /etc/nftables.conf: table inet trash, what each zone may reach on the node itself;
# checked by nft -c before it is written.
trash-firewall-files-managed:
  trash.files_managed:
    - concern: firewall
{#- Starting and reloading services is a live action: not when the files go to another
    root (an image build, a test). #}
{%- if salt['config.get']('trash_root', '/') == '/' %}

include:
  - trash.firewall.service
{%- endif %}
