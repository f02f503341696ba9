# The pppd peer and the systemd unit of the IP link over the ttyS0 null-modem
# cable, corosync's last link (R3).
trash-serial-files-managed:
  trash.files_managed:
    - concern: serial
