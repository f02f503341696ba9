# systemd-networkd takes the links over (the image's ifupdown configures only lo) and
# reloads changed files: `networkctl reload` (the unit's reload) creates new netdevs and
# re-applies the links whose .network changed. A changed .netdev needs the link
# recreated (trash.network_plan says which): that is not done here. A live action:
# network/init.sls includes this file only when trash_root is /.
trash-networkd-running:
  service.running:
    - name: systemd-networkd
    - enable: True
    - reload: True
    - watch:
      - trash: trash-network-files-managed
