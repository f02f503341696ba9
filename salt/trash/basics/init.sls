# /etc/hosts (both nodes by their back-channel addresses), chrony (checked by chronyd -p)
# with the peer node as an NTP peer, and the salt-minion's masters.
trash-basics-files-managed:
  trash.files_managed:
    - concern: basics
{#- Starting and reloading services is a live action: not when the files go to another
    root (an image build, a test). #}
{%- if salt['config.get']('trash_root', '/') == '/' %}

include:
  - trash.basics.service
{%- endif %}
