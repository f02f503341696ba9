# The pppd peer and the systemd unit of the IP link over the ttyS0 null-modem
# cable, corosync's last link (R3).
trash-serial-files-managed:
  trash.files_managed:
    - concern: serial
{#- Starting and reloading services is a live action: not when the files go to another
    root (an image build, a test). #}
{%- if salt['config.get']('trash_root', '/') == '/' %}

include:
  - trash.serial.service
{%- endif %}
