# The *-at-boot states (trash.units_at_boot) enable and disable units without a manager
# reload each; once any of them changed something, systemd reads its unit files again,
# so that `systemctl status` shows the new boot state too; so it does when the cluster's
# files changed (the resource agents' drop-in, trashlib.agents). Only these trigger it
# (onchanges_in): a live action, included by their files only.
trash-systemd-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
