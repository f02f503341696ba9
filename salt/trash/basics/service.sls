# chrony with the managed conf.d fragment; restarted when a basics file changes (the
# state manages hosts, chrony and the minion's file together). A live action:
# basics/init.sls includes this file only when trash_root is /.
include:
  - trash.boot

trash-chrony-running:
  service.running:
    - name: chrony
    - watch:
      - trash: trash-basics-files-managed

trash-chrony-at-boot:
  trash.units_at_boot:
    - enable: [chrony]
    - require:
      - service: trash-chrony-running
    - onchanges_in:
      - cmd: trash-systemd-reloaded
