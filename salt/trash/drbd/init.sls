# The DRBD mirrors of trash:drbd:resources in the syntax of trash:drbd:version,
# checked by that version's drbdadm, and the handler that reports DRBD events.
trash-drbd-files-managed:
  trash.files_managed:
    - concern: drbd
{#- Metadata lives on this machine's disks: not when files go to another root. #}
{%- if salt['config.get']('trash_root', '/') == '/' %}

include:
  - trash.drbd.metadata
  - trash.drbd.initial_sync
{%- endif %}
