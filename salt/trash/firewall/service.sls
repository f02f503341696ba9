# Debian's nftables.service loads /etc/nftables.conf at boot; a changed file is loaded
# with its reload (nft -f: the file replaces table inet trash atomically), never with a
# restart, whose stop flushes every table. A live action: firewall/init.sls includes
# this file only when trash_root is /.
include:
  - trash.boot

trash-firewall-loaded:
  service.running:
    - name: nftables
    - reload: True
    - watch:
      - trash: trash-firewall-files-managed

trash-firewall-at-boot:
  trash.units_at_boot:
    - enable: [nftables]
    - require:
      - service: trash-firewall-loaded
    - onchanges_in:
      - cmd: trash-systemd-reloaded
