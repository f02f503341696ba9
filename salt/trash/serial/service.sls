# pppd over the null-modem cable (trash-serial-link), started at boot and now; restarted
# when its peer file or unit changes (the unit change is picked up by a daemon-reload
# that Salt's systemd module does itself). A live action: serial/init.sls includes this
# file only when trash_root is /.
include:
  - trash.boot

trash-serial-link-running:
  service.running:
    - name: trash-serial-link
    - watch:
      - trash: trash-serial-files-managed

trash-serial-link-at-boot:
  trash.units_at_boot:
    - enable: [trash-serial-link]
    - require:
      - service: trash-serial-link-running
    - onchanges_in:
      - cmd: trash-systemd-reloaded
