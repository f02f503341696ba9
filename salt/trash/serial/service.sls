# pppd over the null-modem cable (trash-serial-link), started at boot and now; restarted
# when its peer file or unit changes (the unit change is picked up by a daemon-reload
# that Salt's systemd module does itself). A live action: serial/init.sls includes this
# file only when trash_root is /.
trash-serial-link-running:
  service.running:
    - name: trash-serial-link
    - enable: True
    - watch:
      - trash: trash-serial-files-managed
