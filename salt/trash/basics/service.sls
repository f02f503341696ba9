# chrony with the managed conf.d fragment; restarted when a basics file changes (the
# state manages hosts, chrony and the minion's file together). A live action:
# basics/init.sls includes this file only when trash_root is /.
trash-chrony-running:
  service.running:
    - name: chrony
    - enable: True
    - watch:
      - trash: trash-basics-files-managed
