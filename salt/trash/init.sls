{#- The whole pillar is validated before anything else is rendered. When it is
    invalid, the only state is the failed validation, which lists every problem
    with its key (show_highstate shows them too); nothing else can change. #}
{%- set check = salt['trash.validate']() %}
trash-pillar-validated:
  trash.pillar_valid:
    - order: 1
{%- if not check.valid %}
    - problems: {{ check.problems | json }}
{%- else %}

include:
{%- if salt['config.get']('trash_root', '/') == '/' %}
  - trash.packages
{%- endif %}
  - trash.basics
  - trash.network
  - trash.firewall
  - trash.serial
  - trash.cluster
{%- if salt['config.get']('trash_root', '/') == '/' %}
  {#- partitions, filesystems, mounts: live actions on this machine's disk #}
  - trash.storage
{%- endif %}
  - trash.drbd
  - trash.guests
{%- endif %}
