# The running corosync takes a changed corosync.conf without a restart where it can;
# what needs a restart is named. A corosync that is not running is started (and enabled
# at boot) once its links are configured: networkd's cross-links and the serial link.
include:
  - trash.boot
  - trash.network
  - trash.serial

trash-corosync-reloaded:
  trash.corosync_reloaded:
    - require:
      - trash: trash-cluster-files-managed

trash-corosync-running:
  service.running:
    - name: corosync
    - require:
      - trash: trash-corosync-reloaded
      - service: trash-networkd-running
      - service: trash-serial-link-running

trash-corosync-at-boot:
  trash.units_at_boot:
    - enable: [corosync]
    - require:
      - service: trash-corosync-running
    - onchanges_in:
      - cmd: trash-systemd-reloaded
