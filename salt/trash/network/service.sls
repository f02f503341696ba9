# systemd-networkd takes the links over — ifupdown keeps only what the formula does not
# configure (from the next boot; its running configuration is left alone) — and
# reloads changed files: `networkctl reload` (the unit's reload) creates new netdevs and
# re-applies the links whose .network changed. A changed .netdev needs the link
# recreated (trash.network_plan says which): that is not done here. A live action:
# network/init.sls includes this file only when trash_root is /.
include:
  - trash.boot

trash-ifupdown-released:
  trash.ifupdown_released: []

trash-networkd-running:
  service.running:
    - name: systemd-networkd
    - reload: True
    - require:
      - trash: trash-ifupdown-released
    - watch:
      - trash: trash-network-files-managed

trash-networkd-at-boot:
  trash.units_at_boot:
    - enable: [systemd-networkd]
    - require:
      - service: trash-networkd-running
    - onchanges_in:
      - cmd: trash-systemd-reloaded
